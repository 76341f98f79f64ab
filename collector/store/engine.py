"""Engine creation (SQLite pragmas: WAL, foreign keys, busy timeout); the URL rule is collector.database_url."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite

# The URL rule lives in collector.database_url (no SQLAlchemy there); re-exported for the store's callers.
from collector.database_url import redact_url as redact_url
from collector.database_url import resolve_url as resolve_url
from collector.vocabulary import DATABASE_URL_ENV, DEFAULT_DATABASE_URL

ENV_VAR = DATABASE_URL_ENV  # the store's older names for the vocabulary's two constants
DEFAULT_URL = DEFAULT_DATABASE_URL

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_READ_BUSY_TIMEOUT_MS = 1_000


def missing_database_file(url: str) -> str | None:
    """The path of a file-backed SQLite database that does not exist, else None.

    Read-only commands check this first: connecting would create an empty database and report on
    nothing (``up 1``, "no values") instead of saying the path is wrong.
    """
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if str(parsed.query.get("mode", "")) == "memory" or parsed.database.startswith("file:"):
        return None
    return None if os.path.exists(parsed.database) else parsed.database


def _normalise(url: str) -> str:
    # "postgresql://" means psycopg 3 here (the only driver installed).
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str | None = None, *, read_only: bool = False) -> Engine:
    """An engine for ``url``; SQLite connections get WAL, foreign_keys=ON and a busy timeout.

    ``read_only`` (the /metrics scrape): SQLite transactions start with a deferred ``BEGIN``, which
    takes no write lock (a WAL reader sees the last commit while a writer works), and wait at most
    ``SQLITE_READ_BUSY_TIMEOUT_MS`` for a lock.
    """
    real = _normalise(resolve_url(url))
    if real.startswith("sqlite") and read_only:
        engine = create_engine(real, connect_args={"timeout": SQLITE_READ_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _read_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None
            dbapi_conn.execute(f"PRAGMA busy_timeout={SQLITE_READ_BUSY_TIMEOUT_MS}")

        @event.listens_for(engine, "begin")
        def _read_begin(conn) -> None:  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN")

        return engine
    if real.startswith("sqlite"):
        engine = create_engine(real, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below own transactions
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn) -> None:  # type: ignore[no-untyped-def]
            # IMMEDIATE takes the write lock up front, so concurrent writers wait (busy timeout)
            # instead of failing with "database is locked" on lock upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(real, pool_pre_ping=True, connect_args=connect_bound(real))


CONNECT_TIMEOUT_SECONDS = 10
"""How long one PostgreSQL connect may take (a server that accepts and never answers would
otherwise hold the caller for minutes); a ``connect_timeout`` in the URL wins."""


def connect_bound(url: str, seconds: float = CONNECT_TIMEOUT_SECONDS) -> dict[str, Any]:
    """psycopg ``connect_args`` bounding each connect to ``seconds``, unless the URL sets its own."""
    from sqlalchemy.engine import make_url

    if "connect_timeout" in make_url(url).query:
        return {}
    return {"connect_timeout": max(2, round(seconds))}  # libpq's floor is 2 s


def insert_ignore(conn: Connection, table: Any, rows: list[dict[str, Any]], key: list[str]) -> None:
    """INSERT ``rows``, skipping any whose ``key`` columns are already there (PostgreSQL or SQLite)."""
    if rows:
        ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(ins(table).on_conflict_do_nothing(index_elements=key), rows)
