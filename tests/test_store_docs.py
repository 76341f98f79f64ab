"""Every example query in docs/sql.md runs, and returns rows, on both databases."""

from __future__ import annotations

import re
from pathlib import Path

from assessment_data import FAST, store_file
from sqlalchemy import text
from store_helpers import full_run, migrated_store

from collector.assessment import assess_all
from collector.service import build_embedder

DOC = Path(__file__).resolve().parents[1] / "docs" / "sql.md"


def doc_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)


def test_docs_have_the_five_queries() -> None:
    assert len(doc_queries()) >= 6


def test_every_doc_query_runs(db_url: str) -> None:
    store = migrated_store(db_url)
    full_run(store, "demo", "v1", 0.8)
    full_run(store, "demo", "v2", 0.5)
    full_run(store, "demo", "v2", 0.1, status="failed")
    for version, name in [("v1", "series_v1"), ("v3", "series_v3"), ("v4", "series_v4")]:
        store_file(store, "smol", version, name)  # real outputs: diversity falls (temperature 1.0 -> 0.2)
    assess_all(store, **FAST)  # comparisons, verdicts and trends for the assessment queries
    build_embedder(store=store).embed(["a stored output"])  # an embedding identity and its vector
    dialect = store.engine.dialect.name
    ran = 0
    with store.engine.connect() as conn:
        for q in doc_queries():
            m = re.match(r"-- dialect: (\w+)", q)
            if m and m.group(1) != dialect:
                continue
            rows = conn.execute(text(q)).all()
            assert rows, f"doc query returned nothing on {dialect}:\n{q}"
            ran += 1
    assert ran == len(doc_queries()) - 1
