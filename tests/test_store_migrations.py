"""Migrations: upgrade -> downgrade -> upgrade on both databases, and no drift from the models."""

from __future__ import annotations

import math

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from store_helpers import full_run

from collector.store import Store, migrate
from collector.store.engine import make_engine
from collector.store.models import Base
from collector.store.views import VIEWS
from collector.vocabulary import ChangeRow


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


def test_0012_backfills_the_change_unit(db_url: str) -> None:
    """Rows stored before 0012 get the change on the metric's scale: a ratio metric its relative
    diversity change, a rate the oriented difference of the two runs' stored values (interval NULL)."""
    migrate.upgrade(db_url)
    store = Store(db_url)
    runs = {version: full_run(store, "m", version, 0.5) for version in ("v1", "v2")}
    values = {"v1": (0.8, 2.0), "v2": (0.6, 3.0)}  # (self_bleu: lower is more diverse, vendi_score)
    insert = text(
        "INSERT INTO metric_values (run_id, version_id, metric, scope, value, n_samples, n_prompts, family, "
        "higher_is_diverse) SELECT id, version_id, :metric, 'within', :value, 4, 2, 'lexical', :up "
        "FROM runs WHERE id = :run"
    )
    with store.engine.begin() as conn:
        for version, (bleu, vendi) in values.items():
            for metric, value, up in (("self_bleu", bleu, False), ("vendi_score", vendi, True)):
                conn.execute(insert, {"metric": metric, "value": value, "up": up, "run": runs[version]})
    rows = [
        ChangeRow("m", "v2", metric, "within", "baseline", 9.0, 9.0, 9.0, 0.01, True, 2, runs["v1"], *rel, up)
        for metric, rel, up in (
            ("self_bleu", (0.25, 0.2, 0.3), False),
            ("vendi_score", (0.5, 0.4, 0.6), True),
        )
    ]
    store.save_assessment(runs["v2"], rows, None)
    migrate.downgrade(db_url, "0011")
    migrate.upgrade(db_url)
    back = {c.metric: c for c in store.comparisons_of(runs["v2"])}
    assert (back["vendi_score"].change, back["vendi_score"].ci_low, back["vendi_score"].ci_high) == (
        0.5,
        0.4,
        0.6,
    )
    # self_bleu fell 0.8 -> 0.6: 20 points MORE diverse (its own direction is down)
    assert back["self_bleu"].change == pytest.approx(0.2)
    assert math.isnan(back["self_bleu"].ci_low) and math.isnan(back["self_bleu"].ci_high)
    assert back["self_bleu"].relative == 0.25 and not back["self_bleu"].higher_is_diverse
    store.engine.dispose()
