"""Several processes migrating one fresh PostgreSQL schema at once all succeed (the advisory lock).

Replicas of the collector start together and each runs ``db upgrade`` (or the upgrade ``run`` does
on start). Without a lock two of them create the same tables at once and one fails with a
``UniqueViolation`` on ``pg_type``. The processes here are real, separate interpreters that import
first and then start the command at the same instant (a barrier), so the race is actually run.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import pytest
from sqlalchemy import inspect

from collector.store import migrate
from collector.store.engine import make_engine

PG = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
N = 3


def _db_upgrade(url: str, barrier: Any, results: Any) -> None:
    """One `collapse-watch db upgrade` in this process, started when every process is ready."""
    import typer

    from collector.cli import app

    barrier.wait(timeout=120)
    try:  # click returns the exit status instead of exiting when not standalone
        code = app(["db", "upgrade", "--database-url", url], standalone_mode=False)
        results.put(("ok", "") if not code else ("exit", str(code)))
    except typer.Exit as exc:
        results.put(("exit", str(exc.exit_code)))
    except BaseException as exc:  # reported to the test, never lost
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def concurrent_upgrades(url: str, n: int = N) -> list[tuple[str, str]]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [ctx.Process(target=_db_upgrade, args=(url, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    out = [results.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return out


@pytest.mark.slow
@PG
def test_three_concurrent_db_upgrades_on_a_fresh_schema_all_succeed(db_url: str) -> None:
    assert migrate.current(db_url) == "none"
    results = concurrent_upgrades(db_url)
    assert results == [("ok", "")] * N, results
    assert migrate.current(db_url) == migrate.head()
    engine = make_engine(db_url)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert {"runs", "samples", "alembic_version"} <= tables


@PG
def test_the_lock_is_released_after_each_migration(db_url: str) -> None:
    """Taking the lock twice in a row does not wait: it is released when the block ends."""
    with migrate.migration_lock(db_url):
        pass
    with migrate.migration_lock(db_url):  # released: taking it again does not wait
        engine = make_engine(db_url)
        with engine.connect() as conn:
            held = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                f"AND classid = {migrate.MIGRATION_LOCK_CLASS}"
            ).scalar()
        engine.dispose()
        assert held >= 1


@pytest.mark.slow
def test_sqlite_upgrade_needs_no_server_lock(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'x.db'}"
    results = concurrent_upgrades(url)
    assert results == [("ok", "")] * N, results
    assert migrate.current(url) == migrate.head()
