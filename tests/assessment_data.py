"""The real SmolLM2 series (tests/data) stored through the real API, scored once per process.

``series_v1`` .. ``series_v4``: the same 16 prompts × 4 outputs at temperatures 1.0, 0.7, 0.4, 0.2;
``control_b``: an independent sample at 1.0.  Scores are cached per (file, embedded) because
scoring does not depend on the database; the embedder is loaded once per process.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from collector.embeddings import Embedder
from collector.metrics.base import Sample
from collector.metrics.result import SuiteResult
from collector.scoring import score_batch, scored_identity
from collector.store import SampleRecord, Store
from collector.store.cli_commands import record_scored_file

DATA = Path(__file__).parent / "data"
FAST = {"n_boot": 300, "n_halves": 10}  # comparison settings that keep the tests quick


def rows(name: str) -> list[dict]:
    with (DATA / f"{name}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@cache
def embedder() -> Embedder:
    return Embedder("default")


def embed(texts: list[str]) -> object:
    return embedder().embed(texts)


@cache
def scored(name: str, embedded: bool) -> SuiteResult:
    samples = [Sample(r["prompt_id"], r["output"], r["prompt"]) for r in rows(name)]
    return score_batch(name, samples, embed=embed if embedded else None, n_boot=20).result


def store_file(store: Store, model: str, version: str, name: str, *, embedded: bool = False) -> int:
    """Record data file ``name`` as a run of ``model``/``version``; returns the run id."""
    records = [
        SampleRecord(r["prompt_id"], r["prompt"], r["output"], sample_index=i)
        for i, r in enumerate(rows(name))
    ]
    return record_scored_file(store, model, version, records, scored(name, embedded))


def store_scored(store: Store, version: str, name: str, embed: object, model: str = "smol") -> int:
    """Score data file ``name`` with ``embed`` and record it as a run, as `score --store` does."""
    recs = rows(name)
    samples = [Sample(r["prompt_id"], r["output"], r["prompt"]) for r in recs]
    result = score_batch(name, samples, embed=embed, n_boot=20).result  # type: ignore[arg-type]
    records = [
        SampleRecord(r["prompt_id"], r["prompt"], r["output"], sample_index=i) for i, r in enumerate(recs)
    ]
    return record_scored_file(
        store,
        model,
        version,
        records,
        result,
        embedding_identity=scored_identity(embed, result),  # type: ignore[arg-type]
    )
