"""What storing embeddings in SQL saves: assessing a new run, before (re-embed) and after (read back).

    python benchmarks/stored_embeddings_bench.py [--outputs 1000] [--pg postgresql+psycopg://...]

Three versions of one model are stored as runs of ``--outputs`` mostly distinct real-text outputs
each (sentences of real SmolLM2 outputs recombined, 40 prompts; ``lexical_bench.make_texts``), then
the third is assessed against the baseline (v1) and the previous version (v2), in a fresh process
state each time, the way a `score --store` invocation or a restarted collector does it:

* previous implementation: an Embedder with its in-memory cache only: every assessment embeds the
  candidate, the baseline and the previous run again;
* current: the Embedder reads and writes ``embedding_vectors`` in the history database; the
  candidate's vectors were stored when it was scored, so the assessment embeds nothing.

Also printed: bytes per stored vector (SQLite page count, PostgreSQL ``pg_total_relation_size``)
and read-back throughput. The embedding model is the packaged all-MiniLM-L6-v2 (local backend).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lexical_bench import make_texts  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from collector.assessment import assess_model  # noqa: E402
from collector.embeddings import Embedder, load_model  # noqa: E402
from collector.metrics.base import Sample  # noqa: E402
from collector.scoring import score_batch, scored_identity  # noqa: E402
from collector.service import build_embedder  # noqa: E402
from collector.store import SampleRecord, Store, migrate  # noqa: E402
from collector.store import models as m  # noqa: E402
from collector.store.cli_commands import record_scored_file  # noqa: E402

N_PROMPTS = 40
FAST = {"n_boot": 300, "n_halves": 20}


def version_samples(n: int, seed: int) -> list[Sample]:
    return [Sample(f"p{i % N_PROMPTS:02d}", t) for i, t in enumerate(make_texts(n, seed=seed))]


def store_version(store: Store, version: str, samples: list[Sample], embed: Embedder) -> int:
    result = score_batch(version, samples, embed=embed, n_boot=20).result
    records = [
        SampleRecord(s.prompt_id, s.prompt_id, s.output, sample_index=i) for i, s in enumerate(samples)
    ]
    return record_scored_file(
        store, "bench", version, records, result, embedding_identity=scored_identity(embed, result)
    )


def vector_bytes(store: Store) -> float:
    """Bytes on disk per stored vector, table plus index."""
    with store.engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(m.EmbeddingVector)) or 1
        if conn.dialect.name == "postgresql":
            size = conn.scalar(text("SELECT pg_total_relation_size('embedding_vectors')"))
        else:
            size = conn.scalar(text("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE '%embedding_vectors%'"))
    return float(size or 0) / n


def bench(url: str, n: int) -> list[list[str]]:
    migrate.upgrade(url)
    store = Store(url)
    writer = build_embedder(store=store)
    for g, version in enumerate(("v1", "v2", "v3")):
        store_version(store, version, version_samples(n, seed=100 + g), writer)

    rows = []
    for name, embedder in (
        ("previous: in-memory cache only", Embedder()),
        ("current: vectors read from SQL", build_embedder(store=store)),
    ):
        t0 = time.perf_counter()
        assess_model(store, "bench", embed=embedder, **FAST)
        rows.append([name, f"{time.perf_counter() - t0:.1f}", str(embedder.n_encoded)])

    reader = build_embedder(store=store)
    texts = [s.output for s in version_samples(n, seed=100)]
    t0 = time.perf_counter()
    reader.embed(texts)
    read_s = time.perf_counter() - t0
    rows.append(
        ["read back one run's vectors", f"{read_s:.2f}", f"{reader.n_encoded} ({n / read_s:,.0f} vectors/s)"]
    )
    rows.append(["bytes per stored vector (384 dims)", f"{vector_bytes(store):,.0f}", ""])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outputs", type=int, default=1000, help="outputs per stored run")
    ap.add_argument("--pg", default=None, help="a PostgreSQL URL (an empty database) to measure too")
    args = ap.parse_args()
    load_model()  # model loading is not assessment time
    urls = []
    with tempfile.TemporaryDirectory() as tmp:
        urls.append(("SQLite", f"sqlite:///{tmp}/bench.db"))
        if args.pg:
            urls.append(("PostgreSQL", args.pg))
        for name, url in urls:
            table = Table(title=f"{name}: 3 stored runs of {args.outputs} outputs, 40 prompts")
            for col in ("assessing v3 vs v1 and v2", "seconds", "texts embedded"):
                table.add_column(col)
            for row in bench(url, args.outputs):
                table.add_row(*row)
            Console().print(table)


if __name__ == "__main__":
    main()
