"""The local vector cache of file comparisons: the history database's vector store in a SQLite file.

`collapse-watch compare A.jsonl B.jsonl` and `score FILE` (without a database) keep the vectors
they compute in ``vectors.sqlite`` under the user's cache directory (``$XDG_CACHE_HOME`` or
``~/.cache``, then ``collapse-watch/``; ``$COLLAPSE_WATCH_CACHE_DIR`` instead when set): the same tables and keys as the history database's
``StoredEmbeddings`` (embedding identity + SHA-256 of the text, float16 vectors), so a second
comparison of the same texts embeds nothing and loads no model. ``--no-cache`` turns it off.

Bounded: at most ``max_vectors`` vectors (default ``DEFAULT_MAX_VECTORS``, about 1.1 KB each with
key and index for MiniLM; ``COLLAPSE_WATCH_CACHE_MAX_VECTORS`` overrides). ``created_at`` means
*last used* here: a vector read back is touched, and when a write takes the file over its bound
the least recently used vectors are deleted down to 90% of it (LRU by batches of texts).

A cache must never fail the gate: a file that cannot be opened or read is reported once (on the
``warn`` callback) and the command goes on without it, embedding as if it were empty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from collector import environment
from collector.store import models as m
from collector.store.embeddings import CHUNK, StoredEmbeddings
from collector.store.engine import make_engine

DEFAULT_MAX_VECTORS = 200_000  # ≈ 220 MB of SQLite
CACHE_FILE = "vectors.sqlite"


def cache_dir() -> Path:
    """Where ``vectors.sqlite`` lives: ``$COLLAPSE_WATCH_CACHE_DIR``, else collapse-watch's directory in
    the user's cache (``$XDG_CACHE_HOME/collapse-watch``, else ``~/.cache/collapse-watch``)."""
    from collector.embeddings import cache_root

    explicit = environment.vector_cache_dir()
    return Path(explicit) if explicit else cache_root()


def max_vectors_from_env() -> int:
    raw = environment.vector_cache_max() or ""
    try:
        value = int(raw) if raw else DEFAULT_MAX_VECTORS
    except ValueError:
        raise ValueError(f"COLLAPSE_WATCH_CACHE_MAX_VECTORS must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"COLLAPSE_WATCH_CACHE_MAX_VECTORS must be at least 1, got {value}")
    return value


class LocalVectorCache(StoredEmbeddings):
    """``StoredEmbeddings`` over a private SQLite file, touched on read and pruned on write."""

    def __init__(
        self,
        path: Path,
        backend: str,
        model: str,
        *,
        max_vectors: int = DEFAULT_MAX_VECTORS,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.read_only = _read_only(path)  # readable but not writable: read, never write
        if self.read_only:
            engine = make_engine(f"sqlite:///{path}", read_only=True)  # deferred BEGIN: no write lock
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            engine = make_engine(f"sqlite:///{path}")
            m.Base.metadata.create_all(
                engine, tables=[m.EmbeddingIdentityRow.__table__, m.EmbeddingVector.__table__]
            )
        super().__init__(engine, backend, model)
        self.path = path
        self.max_vectors = max_vectors
        self.warn = warn
        self.failed: str | None = None  # the first error: the cache is off from then on
        if self.read_only and warn is not None:
            warn(f"vector cache {path} is read-only: reading it, storing no new vectors")

    def _off(self, exc: Exception) -> None:
        self.failed = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if self.warn is not None:
            self.warn(f"vector cache {self.path} unusable, embedding without it: {self.failed}")

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        if self.failed is not None:
            return {}
        try:
            found = super().get_many(keys)
        except (SQLAlchemyError, OSError, ValueError) as exc:
            self._off(exc)
            return {}
        if found and self._identity_id is not None and not self.read_only:
            try:
                self._touch(list(found))
            except (SQLAlchemyError, OSError) as exc:  # cannot write (read-only, full): keep reading
                self.read_only = True
                if self.warn is not None:
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    self.warn(f"vector cache {self.path} cannot be written, storing no new vectors: {first}")
        return found

    def _touch(self, keys: list[str]) -> None:
        v = m.EmbeddingVector
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                conn.execute(
                    update(v)
                    .where(v.identity_id == self._identity_id, v.text_sha256.in_(chunk))
                    .values(created_at=now)
                )

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        if self.failed is not None or self.read_only or not items:
            return
        try:
            super().put_many(items)
            self.prune()
        except (SQLAlchemyError, OSError, ValueError) as exc:
            self._off(exc)

    def prune(self) -> int:
        """Delete the least recently used vectors (any identity) down to 90% of the bound, if over it."""
        v = m.EmbeddingVector
        with self.engine.begin() as conn:
            total = int(conn.scalar(select(func.count()).select_from(v)) or 0)
            if total <= self.max_vectors:
                return 0
            excess = total - int(self.max_vectors * 0.9)
            oldest = select(v.identity_id, v.text_sha256).order_by(v.created_at, v.text_sha256).limit(excess)
            victims = [{"i": i, "k": k} for i, k in conn.execute(oldest)]
            gone = delete(v).where(v.identity_id == bindparam("i"), v.text_sha256 == bindparam("k"))
            for start in range(0, len(victims), CHUNK):
                conn.execute(gone, victims[start : start + CHUNK])
        return len(victims)

    def close(self) -> None:
        self.engine.dispose()


def _read_only(path: Path) -> bool:
    """Whether ``path`` is an existing file this process can read but not write (open() is the
    test: permission bits say nothing for root, an immutable file or a read-only mount)."""
    if not path.is_file():
        return False
    try:
        with path.open("r+b"):
            return False
    except OSError:
        return True


def open_local_cache(
    backend: str, model: str, *, root: Path | None = None, warn: Callable[[str], None] | None = None
) -> LocalVectorCache | None:
    """The cache file under ``root`` (default ``cache_dir()``) for one embedder, or None (after a
    warning) if it cannot be opened."""
    path = (root or cache_dir()) / CACHE_FILE
    try:
        return LocalVectorCache(path, backend, model, max_vectors=max_vectors_from_env(), warn=warn)
    except (SQLAlchemyError, OSError) as exc:
        if warn is not None:
            warn(f"vector cache {path} unusable, embedding without it: {str(exc).splitlines()[0]}")
        return None


__all__ = ["CACHE_FILE", "DEFAULT_MAX_VECTORS", "LocalVectorCache", "cache_dir", "open_local_cache"]
