"""One `collapse-watch run` per SQLite file: an exclusive ``flock`` on a file beside the database.

SQLite is the single-machine default and has no leases (docs/replicas.md), so a second collector on
the same file would collect every model twice.  The lock is ``<database>.collector-lock`` (not the
database itself: SQLite's own POSIX locks must stay untouched), holds the owner's pid for the
message, and is released by the kernel when the process ends however it ends.  Only ``run`` takes
it; read-only commands (``history``, ``report``, ``serve-metrics``, ``compare``) never do.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from collector.store.engine import redact_url, resolve_url


class AlreadyCollecting(RuntimeError):
    """Another process is collecting into this SQLite file."""


def sqlite_path(url: str | None) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory SQLite."""
    parsed = make_url(resolve_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


@contextmanager
def single_collector(url: str | None) -> Iterator[None]:
    """Hold the run lock of a SQLite database (no-op for PostgreSQL, where leases apply)."""
    path = sqlite_path(url)
    if path is None:
        yield
        return
    lock_path = path.with_name(path.name + ".collector-lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise AlreadyCollecting(
                f"another `collapse-watch run` (pid {owner}) is already collecting into "
                f"{redact_url(resolve_url(url))}; SQLite takes one collector per file. Stop it first, "
                "or move to PostgreSQL to run replicas (docs/replicas.md)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
