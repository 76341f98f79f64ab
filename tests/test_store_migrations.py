"""Migrations: upgrade -> downgrade -> upgrade on both databases, and no drift from the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from collector.store import migrate
from collector.store.engine import make_engine
from collector.store.models import Base
from collector.store.views import VIEWS


def test_upgrade_downgrade_upgrade_and_no_drift(db_url: str) -> None:
    assert migrate.current(db_url) == "none"
    migrate.upgrade(db_url)
    assert migrate.current(db_url) == migrate.head()
    migrate.downgrade(db_url, "base")
    assert migrate.current(db_url) == "none"
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        assert set(VIEWS) <= set(inspect(conn).get_view_names())
    engine.dispose()


def test_relative_downgrade_steps_back_one_revision(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`db downgrade -1` (the example in its own help) goes one revision down and back up."""
    from alembic.script import ScriptDirectory

    url = f"sqlite:///{tmp_path / 'h.db'}"
    migrate.upgrade(url)
    script = ScriptDirectory.from_config(migrate.alembic_config())
    previous = script.get_revision(migrate.head()).down_revision
    migrate.downgrade(url, "-1")
    assert migrate.current(url) == (previous or "none")
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()


def test_sqlite_pragmas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_url_resolution(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from collector.store.engine import DEFAULT_URL, ENV_VAR, resolve_url

    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_url(None) == DEFAULT_URL == "sqlite:///collapse-watch.db"
    monkeypatch.setenv(ENV_VAR, "sqlite:///env.db")
    assert resolve_url(None) == "sqlite:///env.db"
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"


def test_db_upgrade_says_what_it_did(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The migration Job's only log line: "upgraded from X to Y" the first time, "already at Y" after."""
    from cli_process import cli

    from collector.store.migrate import head

    url = f"sqlite:///{tmp_path / 'm.db'}"
    first = cli("db", "upgrade", "--database-url", url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"{url}: upgraded from revision none to {head()}"
    again = cli("db", "upgrade", "--database-url", url)
    assert again.stdout.strip() == f"{url}: already at revision {head()}"
