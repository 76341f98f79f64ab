"""The tail-coverage family (collector.metrics.tail): hand values, Monte Carlo and `prdc` parity,
and its behaviour on real SmolLM2 outputs (a self-trained series loses tails, the unchanged model
and a length-only change do not).  Lexical only on real text (no embedder): fast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from collector.comparison import ScoredBatch, compare_batches, restrict, tail_rows
from collector.metrics.base import Sample, build_corpus
from collector.metrics.lexical import rarefied_richness
from collector.metrics.registry import select_metrics
from collector.metrics.suite import half_sample_weights, score_corpus
from collector.metrics.tail import (
    TailPair,
    knn_prdc,
    presence_probability,
    rare_ngram_retention,
    retention_from_counts,
    singleton_probability,
)

DEMO = Path(__file__).resolve().parents[1] / "collector" / "demo_data"


def _versions(name: str) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for line in (DEMO / name).read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        out.setdefault(r["version"], []).append(Sample(r["prompt_id"], r["output"], r["prompt"]))
    return out


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# --- hand values and references -------------------------------------------------------------------


def test_retention_hand_values_at_the_full_budget() -> None:
    # budget = both pools (4 tokens each): singletons are exactly the count-1 words
    fwd, rev = rare_ngram_retention(["a b c a"], ["a b b d"], n=1, budget=4)
    assert fwd == pytest.approx(0.5)  # base singletons b, c; the candidate has b
    assert rev == pytest.approx(0.5)  # candidate singletons a, d; the baseline has a
    fwd, rev = rare_ngram_retention(["x y z"], ["x x x"], n=1, budget=3)
    assert fwd == pytest.approx(1 / 3)  # the candidate kept x only of x, y, z
    assert np.isnan(rev)  # the candidate has no rare word at all
    assert np.isnan(rare_ngram_retention([""], ["a b"], n=1)[0])


def test_presence_probability_sums_to_rarefied_richness() -> None:
    counts = np.array([1, 1, 2, 3, 5, 8, 13, 40], dtype=float)
    for budget in (1, 5, 20, 73):
        assert presence_probability(counts, budget).sum() == pytest.approx(rarefied_richness(counts, budget))


def test_retention_matches_monte_carlo_subsampling() -> None:
    rng = np.random.default_rng(0)
    src = rng.zipf(1.6, 300) % 60
    tgt = rng.zipf(1.4, 220) % 60
    s, t = np.bincount(src, minlength=60).astype(float), np.bincount(tgt, minlength=60).astype(float)
    b = 150
    rare_mass = kept = 0.0
    for _ in range(4000):
        cs = np.bincount(rng.choice(src, b, replace=False), minlength=60)
        ct = np.bincount(rng.choice(tgt, b, replace=False), minlength=60)
        rare_mass += (cs == 1).sum()
        kept += ((cs == 1) & (ct > 0)).sum()
    assert singleton_probability(s, b).sum() == pytest.approx(rare_mass / 4000, rel=0.02)
    assert retention_from_counts(s, t, b) == pytest.approx(kept / rare_mass, rel=0.02)


def test_knn_prdc_matches_the_prdc_package(capsys: pytest.CaptureFixture[str]) -> None:
    prdc = pytest.importorskip("prdc")
    rng = np.random.default_rng(3)
    real = _unit(rng, 80, 24)
    fake = _unit(rng, 60, 24) + 0.3 * real[:60]
    fake /= np.linalg.norm(fake, axis=1, keepdims=True)
    for k in (1, 3, 5):
        ours = knn_prdc(real, fake, k)
        ref = prdc.compute_prdc(real, fake, k)
        assert ours == pytest.approx({m: float(v) for m, v in ref.items()}, abs=1e-12), k
    capsys.readouterr()


def test_knn_recall_sees_a_narrowed_candidate_and_not_a_fresh_draw() -> None:
    rng = np.random.default_rng(4)
    base = _unit(rng, 120, 8)
    same = _unit(rng, 120, 8)
    narrow = base[:30] + 0.05 * rng.normal(size=(30, 8))  # a fraction of the baseline's support
    narrow = np.repeat(narrow / np.linalg.norm(narrow, axis=1, keepdims=True), 4, axis=0)
    fresh = knn_prdc(base, same, 3)
    assert abs(fresh["recall"] - fresh["precision"]) < 0.15
    collapsed = knn_prdc(base, narrow, 3)
    assert collapsed["recall"] < 0.5 < collapsed["precision"]


def test_pair_replicates_equal_recomputation_on_the_selected_prompts() -> None:
    rng = np.random.default_rng(5)
    ids = [f"p{i}" for i in range(6) for _ in range(5)]
    words = ["the", "a", "cat", "dog", "sat", "ran", "far", "near", "old", "new", "red", "blue"]
    texts = [" ".join(rng.choice(words, 8)) for _ in ids]
    base = build_corpus([Sample(p, t) for p, t in zip(ids, texts, strict=True)], _unit(rng, 30, 8))
    cand_texts = [" ".join(rng.choice(words[:9], 8)) for _ in ids]
    cand = build_corpus([Sample(p, t) for p, t in zip(ids, cand_texts, strict=True)], _unit(rng, 30, 8))
    pair = TailPair(base, cand)
    full = pair.pairs(np.ones(6))
    fwd, rev = rare_ngram_retention(base.texts, cand.texts, 2)
    assert np.isfinite([fwd, rev]).all()
    assert full["tail_ngram_retention_2"] == pytest.approx((fwd, rev))
    prdc = knn_prdc(base.embeddings, cand.embeddings, 3)  # type: ignore[arg-type]
    assert full["tail_knn_recall"] == pytest.approx((prdc["recall"], prdc["precision"]))
    w = np.array([1, 0, 1, 1, 0, 0])
    keep = [base.prompt_ids[i] for i in np.flatnonzero(w)]
    sb, sc = restrict(base, keep), restrict(cand, keep)
    sub = knn_prdc(sb.embeddings, sc.embeddings, 3)  # type: ignore[arg-type]
    assert pair.pairs(w)["tail_knn_recall"] == pytest.approx((sub["recall"], sub["precision"]))
    # all texts have 8 tokens, so the prefix cut is the same on the subset: n-grams agree too
    sub_pair = pair.pairs(w)["tail_ngram_retention_2"]
    assert np.isfinite(sub_pair).all()
    assert sub_pair == pytest.approx(rare_ngram_retention(sb.texts, sc.texts, 2))


def test_pair_rejects_corpora_over_different_prompts() -> None:
    a = build_corpus([Sample("p1", "a b"), Sample("p2", "c d")])
    b = build_corpus([Sample("p1", "a b"), Sample("p3", "c d")])
    with pytest.raises(ValueError, match="same prompts"):
        TailPair(a, b)


# --- real outputs -----------------------------------------------------------------------------------


def _tail(base: list[Sample], cand: list[Sample]) -> dict[str, object]:
    b, c = build_corpus(base), build_corpus(cand)
    halves = half_sample_weights(b.n_prompts, 100, 0)
    m = b.n_prompts // 2
    return {r.metric: r.comparison for r in tail_rows(b, c, halves, float(np.sqrt(m / (b.n_prompts - m))))}


def test_self_trained_series_loses_rare_ngrams_and_the_control_does_not() -> None:
    st = _versions("selftrain_series.jsonl")
    late = _tail(st["v1"], st["v7"])
    for name in ("tail_ngram_retention_1", "tail_ngram_retention_2"):
        c = late[name]
        assert c.significant_decline and c.diversity_change < -0.3, (name, c)  # type: ignore[attr-defined]
    ctl = _versions("control_series.jsonl")
    for a, b in (("v1", "v2"), ("v1", "v3"), ("v2", "v3")):
        assert not any(c.significant_decline for c in _tail(ctl[a], ctl[b]).values()), (a, b)  # type: ignore[attr-defined]


def _half(text: str) -> str:
    words = text.split(" ")
    return " ".join(words[: max(1, len(words) // 2)])


def test_a_length_only_change_is_not_tail_loss_nor_collapse() -> None:
    ctl = _versions("control_series.jsonl")
    shorter = [Sample(s.prompt_id, _half(s.output), s.prompt) for s in ctl["v2"]]
    tail = _tail(ctl["v1"], shorter)
    assert not any(c.significant_decline for c in tail.values()), tail  # type: ignore[attr-defined]
    metrics = select_metrics(None)
    lexical = [m for m in metrics if not m.needs_embeddings]
    sides = []
    for label, samples in (("v1", ctl["v1"]), ("short", shorter)):
        corpus = build_corpus(samples)
        sides.append(ScoredBatch(label, corpus, score_corpus(corpus, lexical, n_boot=2)))
    result = compare_batches(sides[0], sides[1], lexical)
    assert result.verdict.status != "collapse_suspected", result.verdict.reasons
    assert result.verdict.details["pooled_and_tail"]["tail_lost_length_controlled"] == []


def test_blank_outputs_and_one_prompt_give_nan_not_errors() -> None:
    blank = build_corpus([Sample("p1", ""), Sample("p1", " "), Sample("p2", "")])
    words = build_corpus([Sample("p1", "a b c"), Sample("p1", "d e"), Sample("p2", "f g h")])
    halves = half_sample_weights(2, 10, 0)
    rows = tail_rows(blank, words, halves, 1.0)
    assert [r.metric for r in rows] == ["tail_ngram_retention_1", "tail_ngram_retention_2"]
    assert all(np.isnan(r.comparison.rel_change) and not r.comparison.significant_decline for r in rows)
    one = build_corpus([Sample("p1", "a b c d"), Sample("p1", "a b e f")])
    rows = tail_rows(one, one, half_sample_weights(1, 10, 0), 1.0)
    assert not any(r.comparison.significant_decline for r in rows)
