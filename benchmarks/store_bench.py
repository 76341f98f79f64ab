"""Store benchmark: insert throughput and query latency at N stored samples, SQLite and PostgreSQL.

    python benchmarks/store_bench.py --samples 1000000 [--sqlite PATH] [--pg URL]

Writes through the real storage API (``Store.add_samples`` in batches, ``finish_run`` with metric
values), then times every example query of docs/sql.md plus the dashboard reads (median of 5).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from store_helpers import result  # noqa: E402

from collector.store import SampleRecord, Store, migrate  # noqa: E402

RUN_SIZE = 10_000
BATCH = 2_000


def fill(store: Store, n: int) -> float:
    """Insert ``n`` samples over runs of RUN_SIZE across 3 models x 5 versions; returns samples/s."""
    t0 = time.perf_counter()
    done = r = 0
    while done < n:
        model, version = f"model{r % 3}", f"v{(r // 3) % 5 + 1}"
        rid = store.begin_run(model, version, source_kind="bench")
        for b in range(0, RUN_SIZE, BATCH):
            recs = [
                SampleRecord(
                    f"p{i % 50}",
                    f"prompt {i % 50}",
                    f"output {r}-{i} " * 8 if i % 10 else "a duplicated answer",
                    sample_index=i // 50,
                    latency_seconds=0.1,
                    completion_tokens=16,
                )
                for i in range(b, min(b + BATCH, RUN_SIZE))
            ]
            done += store.add_samples(rid, recs)
        store.finish_run(rid, "succeeded" if r % 17 else "failed", None, result(0.5 + (r % 7) / 20))
        r += 1
    return done / (time.perf_counter() - t0)


def timings(store: Store) -> list[tuple[str, float]]:
    dialect = store.engine.dialect.name
    doc = (ROOT / "docs" / "sql.md").read_text()
    queries = [
        ("dashboard: latest_metrics(model0)", lambda: store.latest_metrics("model0")),
        ("dashboard: metric_history", lambda: store.metric_history("model0", "distinct_2")),
    ]
    for q in re.findall(r"```sql\n(.*?)```", doc, re.S):
        m = re.match(r"-- dialect: (\w+)", q)
        if m and m.group(1) != dialect:
            continue
        first = next(line for line in q.splitlines() if line.startswith("SELECT")).strip()
        frm = next(line for line in q.splitlines() if line.startswith("FROM")).strip()

        def run(q: str = q) -> None:
            with store.engine.connect() as conn:
                conn.execute(text(q)).all()

        queries.append((f"doc: {frm} ({first[:40]}…)", run))
    out = []
    for name, fn in queries:
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        out.append((name, statistics.median(ts)))
    return out


def bench(label: str, url: str, n: int) -> None:
    migrate.upgrade(url)
    store = Store(url)
    rate = fill(store, n)
    print(f"\n## {label}: {n} samples\n\ninsert throughput: {rate:,.0f} samples/s\n")
    print("| query | median ms |\n|---|---|")
    for name, s in timings(store):
        print(f"| {name} | {s * 1000:.1f} |")
    store.engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--sqlite", default="/tmp/store_bench.db")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--only", choices=["sqlite", "postgresql"])
    a = ap.parse_args()
    if a.only != "postgresql":
        for suffix in ("", "-wal", "-shm"):
            Path(a.sqlite + suffix).unlink(missing_ok=True)
        bench("SQLite", f"sqlite:///{a.sqlite}", a.samples)
    if a.only != "sqlite":
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(a.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
        try:
            bench("PostgreSQL", f"{a.pg}?options=-csearch_path%3D{schema}", a.samples)
        finally:
            with admin.connect() as c:
                c.execute(text(f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    main()
