"""The SQL source against real PostgreSQL (a private schema) and SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from collector.config import SqlSourceConfig
from collector.sources.base import SourceError
from collector.sources.sql import SqlSource, dump_watermark, load_watermark

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg() -> Iterator[tuple[Engine, str]]:
    engine = create_engine(PG_URL)
    schema = f"cw_src_{uuid.uuid4().hex[:10]}"
    try:
        with engine.begin() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
    except OperationalError as e:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {e}")
    with engine.begin() as c:
        c.execute(
            text(
                f"CREATE TABLE {schema}.logs (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, "
                "prompt text NOT NULL, completion text, ver text)"
            )
        )
    yield engine, schema
    with engine.begin() as c:
        c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def insert(engine: Engine, table: str, rows: list[tuple[int, str, str, str]]) -> None:
    """rows: (minutes after T0, prompt, completion, version)."""
    with engine.begin() as c:
        for minutes, prompt, out, ver in rows:
            c.execute(
                text(f"INSERT INTO {table} (created_at, prompt, completion, ver) VALUES (:t, :p, :o, :v)"),
                {"t": T0 + timedelta(minutes=minutes), "p": prompt, "o": out, "v": ver},
            )


def make(url: str, table: str, tmp_path: Path, watermark: str = "id", query: str | None = None) -> SqlSource:
    q = query or f"SELECT id, created_at, prompt, completion AS output, ver FROM {table}"
    cfg = SqlSourceConfig(
        type="sql",
        url=url,
        query=q,
        watermark_column=watermark,
        version_column="ver",
        state_file=str(tmp_path / "sql-state.json"),
    )
    return SqlSource(cfg)


def test_postgres_new_rows_are_picked_up_none_twice(pg, tmp_path: Path) -> None:
    engine, schema = pg
    table = f"{schema}.logs"
    insert(engine, table, [(0, "a", "out 1", "v1"), (1, "b", "out 2", "v1")])
    src = make(PG_URL, table, tmp_path)
    outs = list(src.pull())
    assert [(o.prompt, o.output, o.version) for o in outs] == [("a", "out 1", "v1"), ("b", "out 2", "v1")]
    src.commit()
    src.close()

    insert(engine, table, [(2, "a", "out 3", "v2")])
    src = make(PG_URL, table, tmp_path)  # a restart reads the stored watermark
    assert [o.output for o in src.pull()] == ["out 3"]
    assert list(src.pull()) == []
    src.commit()
    src.close()
    assert list(make(PG_URL, table, tmp_path).pull()) == []


def test_postgres_timestamp_watermark_and_query_param(pg, tmp_path: Path) -> None:
    engine, schema = pg
    table = f"{schema}.logs"
    insert(engine, table, [(0, "a", "o1", "v1"), (5, "a", "o2", "v1")])
    query = (
        f"SELECT created_at, prompt, completion AS output, ver FROM {table} "
        "WHERE CAST(:watermark AS timestamptz) IS NULL OR created_at > CAST(:watermark AS timestamptz)"
    )
    src = make(PG_URL, table, tmp_path, watermark="created_at", query=query)
    outs = list(src.pull())
    assert [o.output for o in outs] == ["o1", "o2"]
    assert outs[1].created_at == T0 + timedelta(minutes=5)
    src.commit()
    insert(engine, table, [(9, "b", "o3", "v2")])
    src = make(PG_URL, table, tmp_path, watermark="created_at", query=query)
    assert src.watermark == T0 + timedelta(minutes=5)
    assert [o.output for o in src.pull()] == ["o3"]


def test_uncommitted_rows_are_redelivered_with_stable_keys(pg, tmp_path: Path) -> None:
    engine, schema = pg
    table = f"{schema}.logs"
    insert(engine, table, [(0, "a", "o1", "v1"), (1, "a", "o2", "v1")])
    first = [o.source_key for o in make(PG_URL, table, tmp_path).pull()]
    again = [o.source_key for o in make(PG_URL, table, tmp_path).pull()]  # no commit: crash
    assert first == again and len(set(first)) == 2


def sqlite_table(tmp_path: Path) -> tuple[Engine, str]:
    url = f"sqlite:///{tmp_path / 'logs.db'}"
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(
            text(
                "CREATE TABLE logs (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, "
                "prompt TEXT NOT NULL, completion TEXT, ver TEXT)"
            )
        )
    return engine, url


def test_sqlite_limit_never_splits_equal_watermarks(tmp_path: Path) -> None:
    engine, url = sqlite_table(tmp_path)
    # five rows share one timestamp; a limit of 3 must not lose the other two
    insert(
        engine,
        "logs",
        [(0, "a", "o0", "v"), (1, "a", "o1", "v")] + [(2, "b", f"t{i}", "v") for i in range(5)],
    )
    insert(engine, "logs", [(3, "c", "o9", "v")])
    seen: list[str] = []
    for _ in range(5):
        src = make(url, "logs", tmp_path, watermark="created_at")
        seen += [o.output or "" for o in src.pull(limit=3)]
        src.commit()
        src.close()
    assert sorted(seen) == sorted(["o0", "o1", "t0", "t1", "t2", "t3", "t4", "o9"])
    assert len(seen) == 8


def test_sqlite_new_rows_after_first_pull(tmp_path: Path) -> None:
    engine, url = sqlite_table(tmp_path)
    insert(engine, "logs", [(0, "a", "o0", "v1")])
    src = make(url, "logs", tmp_path)
    assert [o.output for o in src.pull()] == ["o0"]
    src.commit()
    insert(engine, "logs", [(1, "a", "o1", "v1"), (2, "a", "o2", "v1")])
    assert [o.output for o in src.pull()] == ["o1", "o2"]
    assert [o.sample_index for o in make(url, "logs", tmp_path).pull()] == [0, 1]


def test_missing_columns_are_named(tmp_path: Path) -> None:
    _, url = sqlite_table(tmp_path)
    src = make(url, "logs", tmp_path, query="SELECT id, prompt, ver FROM logs")
    with pytest.raises(SourceError, match=r"does not select output \(it selects: id, prompt, ver\)"):
        list(src.pull())


def test_query_errors_hide_the_password(tmp_path: Path) -> None:
    src = make("postgresql+psycopg://postgres:hunter2@127.0.0.1:5432/test", "no_such_table", tmp_path)
    with pytest.raises(SourceError) as e:
        list(src.pull())
    assert "hunter2" not in str(e.value) and "query failed" in str(e.value)


def test_null_output_is_reported_not_dropped(tmp_path: Path) -> None:
    engine, url = sqlite_table(tmp_path)
    with engine.begin() as c:
        c.execute(text("INSERT INTO logs (created_at, prompt, completion) VALUES ('x', 'p', NULL)"))
    src = make(url, "logs", tmp_path)
    [o] = list(src.pull())
    assert not o.ok and "id=1" in (o.error or "") and src.malformed == [o.error]


def test_watermark_round_trip() -> None:
    from decimal import Decimal

    for v in (5, 2.5, Decimal("1.10"), T0, T0.date(), "abc", None):
        assert load_watermark(dump_watermark(v)) == v
