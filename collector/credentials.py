"""Every credential a config names, read by one rule and listed for one redaction (issue #22).

* ``read_key(env)``: an API key from the environment variable ``env``.  Surrounding whitespace is
  stripped (a key mounted from a secret file usually ends in a newline); whitespace or control
  characters *inside* the key, non-ASCII characters (no HTTP header carries them), or an
  unset/empty variable, are refused with ``KeyProblem`` (the value is never shown).  The openai source, the embedding server and ``config check`` all use it.
* ``config_secrets(cfg)``: the values to redact from anything stored, logged or printed: each
  key variable's raw and stripped value, ``Authorization``/``api-key`` header values, and the
  password of the database and of every SQL source.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from collector import environment
from collector.config.schema import (
    Config,
    EmbeddingServerConfig,
    ModelConfig,
    OpenAISourceConfig,
    SqlSourceConfig,
)

SECRET_HEADERS = ("authorization", "api-key", "x-api-key")


class KeyProblem(ValueError):
    """An API-key variable that can never work; ``str()`` says why without showing the value."""


def read_key(env: str) -> str:
    """The key in ``$env``, stripped; ``KeyProblem`` when unset, empty or with inner whitespace."""
    key = (environment.named(env) or "").strip()
    if not key:
        raise KeyProblem(f"environment variable {env} is not set")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in key):
        raise KeyProblem(
            f"environment variable {env} holds whitespace or control characters inside the key "
            "(surrounding whitespace is stripped; the value is not shown)"
        )
    if not key.isascii():
        raise KeyProblem(
            f"environment variable {env} holds non-ASCII characters (an HTTP header cannot carry "
            "them; a copied key with a typographic quote or dash? the value is not shown)"
        )
    return key


def read_key_file(path: str) -> str:
    """The key in the file ``path`` (a mounted secret), by the same strip/refuse rule."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyProblem(
            f"cannot read the key file {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    key = raw.strip()
    if not key or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in key):
        raise KeyProblem(f"the key file {path} is empty or holds whitespace inside the key (value not shown)")
    if not key.isascii():
        raise KeyProblem(f"the key file {path} holds non-ASCII characters (value not shown)")
    return key


def alerts_token(cfg: Config) -> str | None:
    """The bearer token ``POST /alerts`` accepts (``alert_receiver``), or None; ``KeyProblem``."""
    receiver = cfg.alert_receiver
    if receiver.bearer_token_env:
        return read_key(receiver.bearer_token_env)
    if receiver.bearer_token_file:
        return read_key_file(receiver.bearer_token_file)
    return None


def key_envs(cfg: Config) -> list[tuple[str, str]]:
    """``(where in the config, variable name)`` of every API-key variable the config names."""
    out = []
    for i, m in enumerate(cfg.models):
        if isinstance(m.source, OpenAISourceConfig) and m.source.api_key_env:
            out.append((f"models[{i}] ({m.name}).source.api_key_env", m.source.api_key_env))
    if cfg.embedding_server is not None and cfg.embedding_server.api_key_env:
        out.append(("embedding_server.api_key_env", cfg.embedding_server.api_key_env))
    return out


def _url_secrets(url: str | None) -> list[str]:
    if not url:
        return []
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # not a URL SQLAlchemy understands: redact it whole
        return [url]
    return [str(password)] if password else []


def _env_values(env: str | None) -> list[str]:
    raw = environment.named(env) if env else None
    return [raw, raw.strip()] if raw else []


def model_secrets(model: ModelConfig) -> list[str]:
    """The credentials one model's source uses."""
    src = model.source
    out: list[str] = []
    if isinstance(src, OpenAISourceConfig):
        out += _env_values(src.api_key_env)
        out += [v for k, v in src.headers.items() if k.lower() in SECRET_HEADERS]
    if isinstance(src, SqlSourceConfig):
        out += _url_secrets(src.url)
    return out


def server_secrets(server: EmbeddingServerConfig | None) -> list[str]:
    return _env_values(server.api_key_env) if server is not None else []


def config_secrets(cfg: Config) -> list[str]:
    """Every credential the config names (see the module docstring), for ``collector.redaction``."""
    out: list[str] = _url_secrets(cfg.database_url) + server_secrets(cfg.embedding_server)
    out += _env_values(cfg.alert_receiver.bearer_token_env)
    with contextlib.suppress(KeyProblem):  # an unusable token is refused elsewhere (preflight)
        out += [t for t in (alerts_token(cfg),) if t]
    for m in cfg.models:
        out += model_secrets(m)
    return unique(out)


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


class TokenFile:
    """The key in a mounted secret file, re-read when the file changes (no restart to rotate it).

    ``current()`` costs one ``stat`` per call; a changed file (inode, mtime or size: a Kubernetes
    Secret's symlink swap changes them) is read again by ``read_key_file``'s rule. A file that is
    briefly missing or empty mid-rotation keeps the last good key (logged once per bad state).
    """

    def __init__(self, path: str) -> None:
        import threading

        self.path = path
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._key = read_key_file(path)  # a bad file at start is the caller's KeyProblem
        self._bad: tuple[int, int, int] | None = None

    def _stat(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except OSError:
            return (0, 0, -1)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current(self) -> str:
        import logging

        stamp = self._stat()
        with self._lock:
            if stamp == self._stamp or stamp == self._bad:
                return self._key
            try:
                key = read_key_file(self.path)
            except KeyProblem as exc:
                self._bad = stamp
                logging.getLogger("collapse_watch.http").warning("keeping the previous bearer token: %s", exc)
                return self._key
            if key != self._key:
                logging.getLogger("collapse_watch.http").info("bearer token re-read from %s", self.path)
            self._key, self._stamp, self._bad = key, stamp, None
            return key
