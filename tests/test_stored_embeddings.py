"""Embeddings stored once per text in the history database, and the embedding identity of runs.

Real parts: the packaged MiniLM, real SmolLM2 outputs (tests/data), SQLite and the real PostgreSQL.
Issue #13: assessing a new run never embeds a stored run again (the cost of a run is one embedding
of its own new texts), and a run embedded by another embedder is not compared on the embedding
metrics: the verdict says why instead of reporting a decline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from assessment_data import FAST, rows, store_scored
from sqlalchemy import text
from store_helpers import migrated_store

from collector.assessment import assess_model
from collector.config import ModelConfig
from collector.embeddings import Embedder, EmbeddingIdentity, text_key
from collector.metrics.base import Sample
from collector.runner import Runner
from collector.scoring import score_batch
from collector.service import after_run_hook, build_embedder
from collector.store import Store
from collector.store.embeddings import StoredEmbeddings, run_identities
from collector.store.retention import prune_embeddings, prune_sample_text

MODEL = "smol"


def distinct_outputs(*names: str) -> set[str]:
    return {r["output"] for n in names for r in rows(n)}


def embedding_rows(store: Store, run_id: int, reference: str) -> list[str]:
    return sorted(
        c.metric
        for c in store.comparisons_of(run_id)
        if c.reference == reference and c.metric.startswith(("embedding", "vendi"))
    )


def test_a_run_costs_one_embedding_of_its_new_texts(db_url: str) -> None:
    store = migrated_store(db_url)
    embedder = build_embedder(store=store)
    v1 = store_scored(store, "v1", "series_v1", embedder)
    assert embedder.n_encoded == len(distinct_outputs("series_v1"))
    first = assess_model(store, MODEL, embed=embedder, **FAST)
    assert first is not None and embedder.n_encoded == len(distinct_outputs("series_v1"))

    before = embedder.n_encoded
    v2 = store_scored(store, "v2", "series_v2", embedder)
    new_texts = distinct_outputs("series_v2") - distinct_outputs("series_v1")
    assert embedder.n_encoded - before == len(new_texts)  # only v2's own new outputs
    verdict = assess_model(store, MODEL, embed=embedder, **FAST)
    assert verdict is not None
    assert embedder.n_encoded - before == len(new_texts)  # the assessment re-embedded nothing

    # A new process (a restarted collector, a replica) reads every vector back: nothing is embedded.
    fresh = build_embedder(store=store)
    again = assess_model(store, MODEL, embed=fresh, **FAST)
    assert again is not None and fresh.n_encoded == 0
    assert fresh.cache.n_read > 0  # type: ignore[attr-defined]
    assert again.status == verdict.status and again.reasons == verdict.reasons
    assert embedding_rows(store, v2, "baseline")  # the embedding family was compared

    label = embedder.identity.label()
    assert label == f"{embedder.backend_kind}:all-MiniLM-L6-v2:384:l2"
    assert embedder.backend_kind.startswith("local-")  # engine and precision, e.g. local-openvino-bf16
    assert run_identities(store.engine, [v1, v2]) == {v1: label, v2: label}
    stored = StoredEmbeddings(store.engine, embedder.backend_kind, "all-MiniLM-L6-v2")
    assert len(stored) == len(distinct_outputs("series_v1", "series_v2"))  # one vector per distinct text


def test_float16_vectors_keep_the_embedding_metrics(db_url: str) -> None:
    """Stored vectors are float16; the embedding metrics move by far less than their intervals."""
    store = migrated_store(db_url)
    texts = sorted(distinct_outputs("series_v1"))
    plain = Embedder().embed(texts)  # float32, no store
    stored = build_embedder(store=store)
    stored.embed(texts)
    read_back = build_embedder(store=store).embed(texts)  # from SQL only
    cosine = np.sum(plain * read_back, axis=1)
    assert cosine.min() > 0.99999
    samples = [Sample(r["prompt_id"], r["output"]) for r in rows("series_v1")]
    a = score_batch("f32", samples, embed=Embedder(), n_boot=20).result
    b = score_batch("f16", samples, embed=build_embedder(store=store), n_boot=20).result
    for va, vb in zip(a.values, b.values, strict=True):
        if va.family == "embedding":
            assert vb.value == pytest.approx(va.value, rel=1e-3, abs=1e-4), va.metric


class SquashedMiniLM:
    """A second embedding backend for the identity rule: real MiniLM vectors pulled towards one
    direction, so their spread is smaller and a naive comparison would report an embedding decline.
    (A real second embedder would need another model file; the packaged MiniLM is the only one.)"""

    kind = "squashed"
    model = "all-MiniLM-L6-v2"
    dimension: int | None = 384

    def __init__(self) -> None:
        self.base = Embedder()

    def encode(self, texts: list[str]) -> np.ndarray:
        vecs = self.base.embed(texts)
        direction = np.ones(vecs.shape[1], dtype=np.float32) / np.sqrt(vecs.shape[1])
        return vecs + 3.0 * direction


def test_runs_of_two_embedders_are_not_compared_on_embeddings(db_url: str) -> None:
    store = migrated_store(db_url)
    local = build_embedder(store=store)
    other = Embedder(
        encoder=SquashedMiniLM(), cache=StoredEmbeddings(store.engine, "squashed", "all-MiniLM-L6-v2")
    )
    # The same healthy model twice (two independent samples at temperature 1.0), embedded by two
    # different embedders: the squashed vectors have a far smaller spread.
    store_scored(store, "v1", "series_v1", local)
    assess_model(store, MODEL, embed=local, **FAST)
    store_scored(store, "v2", "series_v1", local)  # a redeploy of the same outputs
    assess_model(store, MODEL, embed=local, **FAST)
    cand = store_scored(store, "v3", "control_b", other)
    naive = score_batch(
        "x", [Sample(r["prompt_id"], r["output"]) for r in rows("control_b")], embed=other
    ).result
    mean_dist = {v.metric: v.value for v in naive.values if v.scope == "within"}["embedding_mean_distance"]
    assert mean_dist < 0.5 * next(
        v.value
        for v in score_batch(
            "y", [Sample(r["prompt_id"], r["output"]) for r in rows("series_v1")], embed=local
        ).result.values
        if v.metric == "embedding_mean_distance" and v.scope == "within"
    )

    verdict = assess_model(store, MODEL, embed=other, **FAST)
    assert verdict is not None
    # the stored runs were not embedded again under the new identity: only v3's own outputs were
    assert other.n_encoded == len(distinct_outputs("control_b"))
    assert verdict.status == "ok", verdict.reasons  # no decline reported from the embedder change
    reason = verdict.reasons[0]
    assert "embedding metrics not compared with v1 (run 1)" in reason
    assert (
        f"{build_embedder().backend_kind}:all-MiniLM-L6-v2:384:l2" in reason
        and "squashed:all-MiniLM-L6-v2:384:l2" in reason
    )
    # `history` shows no change of an embedding metric across the two embedders; lexical ones it does
    from collector.render.history import history_table

    columns, table = history_table(store, MODEL)
    by_metric = {r[0]: dict(zip(columns, r, strict=True)) for r in table}
    assert by_metric["embedding_mean_distance"]["v3"].endswith("(other embedder)")
    assert "other embedder" not in by_metric["embedding_mean_distance"]["v2"]
    assert "(" in by_metric["embedding_mean_distance"]["v2"]  # same identity: a change is shown
    assert "other embedder" not in by_metric["distinct_2"]["v3"]
    # and so does the HTML report's versions table
    from collector.report.html import _change_text
    from collector.report.load import load_report

    data = load_report(store, MODEL)
    views = {v.label: v for v in data.versions}
    assert _change_text(data, views["v3"], "embedding_mean_distance") == "other embedder"
    assert _change_text(data, views["v2"], "embedding_mean_distance") not in ("other embedder", "–")
    assert _change_text(data, views["v3"], "distinct_2") not in ("other embedder", "–")
    assert verdict.details["embedding_incomparable"] == reason
    assert embedding_rows(store, cand, "baseline") == []
    lexical = {c.metric for c in store.comparisons_of(cand) if c.reference == "baseline"}
    assert {"distinct_2", "self_bleu"} <= lexical
    stored = store.verdict_of(cand)
    assert stored is not None and stored.reasons[0] == reason
    # Trends over versions use one embedder's values: v3's embedding series has v3 alone, while
    # the lexical series spans all three versions.
    n_versions = {(t.metric, t.scope): t.n_versions for t in store.trends_of(MODEL)}
    assert n_versions[("embedding_mean_distance", "within")] == 1
    assert n_versions[("distinct_2", "within")] == 3


def test_retention_drops_vectors_nothing_can_use(db_url: str) -> None:
    store = migrated_store(db_url)
    embedder = build_embedder(store=store)
    store_scored(store, "v1", "series_v1", embedder)
    orphan = "an output of a file given to compare, never stored as a sample"
    embedder.embed([orphan])
    stored = StoredEmbeddings(store.engine, embedder.backend_kind, "all-MiniLM-L6-v2")
    n = len(distinct_outputs("series_v1"))
    assert len(stored) == n + 1
    assert prune_embeddings(store, days=30) == 0  # everything is recent and in use
    later = datetime.now(UTC) + timedelta(days=40)
    assert prune_sample_text(store, days=30, now=later) == n
    assert prune_embeddings(store, days=30, now=later) == n + 1
    assert len(stored) == 0
    assert stored.get_many([text_key(orphan)]) == {}


def test_identity_label_names_backend_model_dimension_and_normalisation() -> None:
    assert EmbeddingIdentity("openai", "bge-small-en-v1.5", 384).label() == "openai:bge-small-en-v1.5:384:l2"
    assert Embedder("sentence-transformers/all-MiniLM-L6-v2").identity == Embedder("default").identity


def test_a_large_pulled_run_embeds_only_its_scored_sample(db_url: str, tmp_path: Path) -> None:
    """A log pull stores every line but scores a bounded sample; the assessment reloads exactly that
    sample (bottom-k by key, not a seeded reservoir), so it finds every vector already stored."""
    outputs = [r for name in ("series_v1", "series_v2") for r in rows(name)]  # 128 real outputs
    log = tmp_path / "requests.jsonl"
    with log.open("w", encoding="utf-8") as f:
        for version in ("v1", "v2"):
            for r in outputs:
                f.write(
                    json.dumps(
                        {
                            "prompt": r["prompt"],
                            "prompt_id": r["prompt_id"],
                            "output": r["output"],
                            "version": version,
                        }
                    )
                    + "\n"
                )
    cfg = ModelConfig.model_validate(
        {
            "name": MODEL,
            "source": {"type": "jsonl", "path": str(log), "state_file": str(tmp_path / "state.json")},
            "min_samples": 1,
            "max_scored_samples": 40,
        }
    )
    store = migrated_store(db_url)
    embedder = build_embedder(store=store)
    verdicts: list[object] = []
    runner = Runner(
        store,
        embedder,
        n_boot=20,
        on_finished=after_run_hook(store, embedder, lambda m, v: verdicts.append(v)),
    )
    reports = runner.run(cfg)
    assert sorted((r.version, r.status, r.n_samples) for r in reports) == [
        ("v1", "succeeded", 128),
        ("v2", "succeeded", 128),
    ]
    assert len(verdicts) == 2
    # 2 runs × 40 scored outputs at most were embedded, not the 256 stored lines, and assessing v2
    # against v1 reloaded the same 40 of each: nothing was embedded for it.
    assert embedder.n_encoded <= 80
    assert len({r["output"] for r in outputs}) > 80  # so the bound is what kept the count down
    with store.engine.connect() as conn:
        n_values = {row[0] for row in conn.execute(text("SELECT DISTINCT n_samples FROM metric_values"))}
    assert n_values == {40}
    fresh = build_embedder(store=store)
    assess_model(store, MODEL, embed=fresh, max_samples=40, **FAST)
    assert fresh.n_encoded == 0


class NeverCalled:
    """An embed function that fails if used: a lexical-only assessment must not load a model."""

    @property
    def identity(self) -> EmbeddingIdentity:
        raise AssertionError("identity asked for by a lexical-only assessment")

    def __call__(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("texts embedded by a lexical-only assessment")


def test_a_lexical_only_assessment_never_touches_the_embedder(db_url: str) -> None:
    store = migrated_store(db_url)
    store_scored(store, "v1", "series_v1", None)
    store_scored(store, "v2", "series_v4", None)
    verdict = assess_model(store, MODEL, embed=NeverCalled(), metrics=["distinct_2", "self_bleu"], **FAST)
    assert verdict is not None and verdict.status == "collapse_suspected"  # T 1.0 -> 0.2, lexical
