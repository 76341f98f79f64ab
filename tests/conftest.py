"""Shared fixtures: ``db_url`` is a fresh empty database on SQLite and on the real PostgreSQL.

SQLite: a new file in ``tmp_path``. PostgreSQL (127.0.0.1:5432, database ``test``, or
``COLLAPSE_WATCH_TEST_PG``): a new schema per test, reached through ``search_path``, dropped after.
The PostgreSQL case is skipped, saying why, only if the server cannot be reached.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The user's cache (the OpenVINO model converted from the packaged weights, the local vector cache of
# file comparisons) lives under the checkout while testing, never in the tester's home: converted once
# per checkout, shared by the test processes and their `collapse-watch` subprocesses. Vectors in it are
# float16 on every path, so a test's values never depend on what an earlier test left there.
os.environ.setdefault("XDG_CACHE_HOME", str(Path(__file__).resolve().parents[1] / ".cache" / "test-xdg"))

PG_BASE = os.environ.get("COLLAPSE_WATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_admin():  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    return create_engine(PG_BASE, isolation_level="AUTOCOMMIT")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a fresh, empty database of each kind (not migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    from sqlalchemy import text

    admin = _pg_admin()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # only an unreachable server skips
        admin.dispose()
        pytest.skip(f"PostgreSQL at {PG_BASE} unreachable: {exc}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
