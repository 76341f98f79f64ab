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

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from collector import environment
from collector.store.vector_rows import VectorRows

if TYPE_CHECKING:
    from collector.store.embeddings import StoredEmbeddings

DEFAULT_MAX_VECTORS = 200_000  # ≈ 220 MB of SQLite
CACHE_FILE = "vectors.sqlite"
CHUNK = 500  # keys per IN (...) lookup, as the history database's store
BUSY_TIMEOUT_SECONDS = 5.0  # a second gate writing the same file: wait for it, then go on without
# How SQLAlchemy writes a DateTime in SQLite (what ``created_at`` holds): a touch must sort with them.
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def cache_dir() -> Path:
    """Where ``vectors.sqlite`` lives: ``$COLLAPSE_WATCH_CACHE_DIR``, else collapse-watch's directory in
    the user's cache (``$XDG_CACHE_HOME/collapse-watch``, else ``~/.cache/collapse-watch``)."""
    from collector.embeddings import cache_root

    explicit = environment.vector_cache_dir()
    return Path(explicit) if explicit else cache_root()


def max_vectors_from_env() -> int:
    """``$COLLAPSE_WATCH_CACHE_MAX_VECTORS``: ASCII digits, at least 1; a count past SQLite's
    integers (19 digits or more) means no practical bound."""
    raw = (environment.vector_cache_max() or "").strip()
    if not raw:
        return DEFAULT_MAX_VECTORS
    count = environment.whole_number(raw, cap=10**18)
    if count is None:
        raise ValueError(
            f"COLLAPSE_WATCH_CACHE_MAX_VECTORS must be a whole number, got {environment.shown(raw)}"
        )
    if count == 0:
        raise ValueError("COLLAPSE_WATCH_CACHE_MAX_VECTORS must be at least 1, got 0")
    return count


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _no_tables(exc: sqlite3.Error) -> bool:
    """A file with no vector tables yet (created empty, or by another program): nothing cached."""
    return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)


class LocalVectorCache(VectorRows):
    """The history database's vector tables in a private SQLite file, touched on read and pruned
    on write.

    Reads (and the touch that marks vectors used) go through the standard library's ``sqlite3``:
    a second comparison that finds every vector here imports no SQLAlchemy (~0.3 s of a 2 s gate).
    Writes go through ``StoredEmbeddings`` on the same file, made on the first write (tables
    created then), so the rows are the history database's own, written by its own code.
    """

    def __init__(
        self,
        path: Path,
        backend: str,
        model: str,
        *,
        max_vectors: int = DEFAULT_MAX_VECTORS,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(backend, model)
        self.read_only = _read_only(path)  # readable but not writable: read, never write
        if not self.read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_vectors = max_vectors
        self.warn = warn
        self.failed: str | None = None  # the first error: the cache is off from then on
        self._conn: sqlite3.Connection | None = None
        self._writer: StoredEmbeddings | None = None
        if self.read_only and warn is not None:
            warn(f"vector cache {path} is read-only: reading it, storing no new vectors")

    def _off(self, exc: BaseException) -> None:
        self.failed = _first_line(exc)
        if self.warn is not None:
            self.warn(f"vector cache {self.path} unusable, embedding without it: {self.failed}")

    def _connection(self) -> sqlite3.Connection | None:
        """The reading connection, or None while there is no file (nothing cached yet)."""
        if self._conn is None:
            if not self.path.is_file():
                return None
            self._conn = self._read_only_connection() if self.read_only else self._open(self.path)
        return self._conn

    @staticmethod
    def _open(target: Path | str, uri: bool = False) -> sqlite3.Connection:
        return sqlite3.connect(target, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, uri=uri)

    def _read_only_connection(self) -> sqlite3.Connection:
        """A file this process cannot write: opened read-only; and where that fails because the
        file is in WAL mode and its ``-shm`` cannot be made beside it (a read-only mount), opened
        as immutable (no locks, the WAL ignored: what was checkpointed, which is what the file
        holds; nobody can write it there either)."""
        base = self.path.resolve().as_uri()
        conn = self._open(f"{base}?mode=ro", uri=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
        return self._open(f"{base}?mode=ro&immutable=1", uri=True)

    def _find_identity(self, conn: sqlite3.Connection) -> int | None:
        if self._identity_id is not None:
            return self._identity_id
        sql = "SELECT id, dimension FROM embedding_identities WHERE backend = ? AND model = ? AND normalised = ?"
        args: list[object] = [self.backend, self.model, int(self.normalised)]
        if self.dimension is not None:
            sql += " AND dimension = ?"
            args.append(self.dimension)
        row = conn.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        if row is not None:
            self._identity_id, self.dimension = int(row[0]), int(row[1])
        return self._identity_id

    def _read(self, keys: Sequence[str]) -> list[tuple[str, bytes]]:
        conn = self._connection()
        if conn is None:
            return []
        ident = self._find_identity(conn)
        if ident is None:
            return []
        rows: list[tuple[str, bytes]] = []
        for start in range(0, len(keys), CHUNK):
            chunk = list(keys[start : start + CHUNK])
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT text_sha256, vector FROM embedding_vectors WHERE identity_id = ? AND text_sha256 IN ({marks})"
            rows.extend(conn.execute(sql, [ident, *chunk]).fetchall())
        return rows

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        if self.failed is not None or not keys:
            return {}
        try:
            found = self._accept(self._read(keys))
        except sqlite3.Error as exc:
            if not _no_tables(exc):
                self._off(exc)
            return {}
        except (OSError, ValueError) as exc:
            self._off(exc)
            return {}
        if found and not self.read_only:
            try:
                self._touch(list(found))
            except (sqlite3.Error, OSError) as exc:  # cannot write (read-only, full): keep reading
                self.read_only = True
                if self.warn is not None:
                    self.warn(
                        f"vector cache {self.path} cannot be written, storing no new vectors: {_first_line(exc)}"
                    )
        return found

    def _touch(self, keys: list[str]) -> None:
        """``created_at`` (last used, here) of these vectors set to now, in one transaction."""
        conn = self._connection()
        if conn is None or self._identity_id is None:
            return
        now = datetime.now(UTC).strftime(SQLITE_DATETIME)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                marks = ", ".join("?" * len(chunk))
                conn.execute(
                    f"UPDATE embedding_vectors SET created_at = ? WHERE identity_id = ? AND text_sha256 IN ({marks})",
                    [now, self._identity_id, *chunk],
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _writing(self) -> StoredEmbeddings:
        """The history database's writer on this file (tables created on first use), sharing this
        cache's identity, dimension and broken keys."""
        if self._writer is None:
            from collector.store import models as m
            from collector.store.embeddings import StoredEmbeddings
            from collector.store.engine import make_engine

            engine = make_engine(f"sqlite:///{self.path}")
            m.Base.metadata.create_all(
                engine, tables=[m.EmbeddingIdentityRow.__table__, m.EmbeddingVector.__table__]
            )
            self._writer = StoredEmbeddings(engine, self.backend, self.model, normalised=self.normalised)
        w = self._writer
        w.backend, w.dimension, w._identity_id, w._invalid = (
            self.backend,
            self.dimension,
            self._identity_id,
            self._invalid,
        )
        return w

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        if self.failed is not None or self.read_only or not items:
            return
        from sqlalchemy.exc import SQLAlchemyError

        try:
            writer = self._writing()
            writer.put_many(items)
            self.dimension, self._identity_id = writer.dimension, writer._identity_id
            self.n_written += len(items)
            self.prune()
        except (SQLAlchemyError, sqlite3.Error, OSError, ValueError) as exc:
            self._off(exc)

    def prune(self) -> int:
        """Delete the least recently used vectors (any identity) down to 90% of the bound, if over it."""
        from sqlalchemy import bindparam, delete, func, select

        from collector.store import models as m

        v = m.EmbeddingVector
        with self._writing().engine.begin() as conn:
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

    def __len__(self) -> int:
        """Vectors of this cache's identity in the file."""
        conn = self._connection()
        if conn is None:
            return 0
        try:
            ident = self._find_identity(conn)
            if ident is None:
                return 0
            row = conn.execute(
                "SELECT count(*) FROM embedding_vectors WHERE identity_id = ?", [ident]
            ).fetchone()
        except sqlite3.Error as exc:
            if _no_tables(exc):
                return 0
            raise
        return int(row[0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._writer is not None:
            self._writer.engine.dispose()


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
    except OSError as exc:
        if warn is not None:
            reason = (
                f"{exc.filename} is not a directory" if isinstance(exc, FileExistsError) else _first_line(exc)
            )
            warn(f"vector cache {path} unusable, embedding without it: {reason}")
        return None


__all__ = ["CACHE_FILE", "DEFAULT_MAX_VECTORS", "LocalVectorCache", "cache_dir", "open_local_cache"]
