"""The environment variables collapse-watch reads: each named once here, with its reader.

Every read of the process environment by the collector goes through this module, so the list below
is the whole list:

* ``COLLAPSE_WATCH_DATABASE_URL``: the database, over the config's ``database_url`` and the default
  (``collector.database_url.resolve_url``, ``collector.config.loading``).
* ``COLLAPSE_WATCH_CACHE``: the root of the converted SmolLM2 checkpoint (``collector.llm``).
* ``COLLAPSE_WATCH_CACHE_DIR``: the local embedding-vector cache's directory
  (``collector.store.vector_cache``), and ``COLLAPSE_WATCH_CACHE_MAX_VECTORS`` its size.
* ``XDG_CACHE_HOME``: the user's cache directory, under which collapse-watch keeps its own.
* ``COLLAPSE_WATCH_DEBUG``: ``1`` shows the traceback of an unexpected error (the CLI).
* ``COLLAPSE_WATCH_WORKERS``: the processes `compare` may use (``1`` keeps it to one;
  ``collector.gate.workers``).
* a variable the config names (``api_key_env``, ``bearer_token_env``): ``named(env)``.

A variable that is set but empty reads as unset (``None``), as it always did.  The process-setup
defaults for Hugging Face (``HF_HUB_OFFLINE``…) are written, not read, by the CLI and the embedder,
and `compare` writes ``OPENBLAS_NUM_THREADS=1`` when unset (``collector.gate.one_blas_thread``).
"""

from __future__ import annotations

import os

from collector.vocabulary import DATABASE_URL_ENV

MODEL_CACHE_ENV = "COLLAPSE_WATCH_CACHE"
VECTOR_CACHE_DIR_ENV = "COLLAPSE_WATCH_CACHE_DIR"
VECTOR_CACHE_MAX_ENV = "COLLAPSE_WATCH_CACHE_MAX_VECTORS"
XDG_CACHE_HOME_ENV = "XDG_CACHE_HOME"
DEBUG_ENV = "COLLAPSE_WATCH_DEBUG"
WORKERS_ENV = "COLLAPSE_WATCH_WORKERS"


def named(env: str) -> str | None:
    """The value of the variable ``env`` as set (surrounding whitespace kept); None if unset or empty."""
    return os.environ.get(env) or None


def shown(raw: str, limit: int = 40) -> str:
    """A variable's value quoted for an error message, cut at ``limit`` characters (a 10 kB value
    is named, not echoed)."""
    return repr(raw) if len(raw) <= limit else f"{raw[:limit]!r}… ({len(raw)} characters)"


def whole_number(raw: str, cap: int) -> int | None:
    """``raw`` as a whole number if it is ASCII digits (None otherwise); a number above ``cap`` is
    ``cap``, and a very long one is never converted (Python refuses past 4,300 digits)."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    digits = raw.lstrip("0") or "0"
    return cap if len(digits) > len(str(cap)) else min(int(digits), cap)


def database_url() -> str | None:
    """``$COLLAPSE_WATCH_DATABASE_URL``: the database, over the config and the default."""
    return named(DATABASE_URL_ENV)


def model_cache() -> str | None:
    """``$COLLAPSE_WATCH_CACHE``: where the converted SmolLM2 checkpoint is kept."""
    return named(MODEL_CACHE_ENV)


def vector_cache_dir() -> str | None:
    """``$COLLAPSE_WATCH_CACHE_DIR``: the directory of the local embedding-vector cache."""
    return named(VECTOR_CACHE_DIR_ENV)


def vector_cache_max() -> str | None:
    """``$COLLAPSE_WATCH_CACHE_MAX_VECTORS`` as written (the cache parses and checks it)."""
    return named(VECTOR_CACHE_MAX_ENV)


def workers() -> str | None:
    """``$COLLAPSE_WATCH_WORKERS`` as written (``collector.gate.workers`` parses and checks it)."""
    return named(WORKERS_ENV)


def xdg_cache_home() -> str | None:
    """``$XDG_CACHE_HOME``: the user's cache directory (``~/.cache`` when unset)."""
    return named(XDG_CACHE_HOME_ENV)


def debug() -> bool:
    """``COLLAPSE_WATCH_DEBUG=1``: an unexpected error shows its traceback."""
    return named(DEBUG_ENV) == "1"
