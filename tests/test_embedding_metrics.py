"""Embedding metrics against brute force and the vendi-score package, on real embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from collector.embeddings import Embedder
from collector.metrics.base import Sample, build_corpus
from collector.metrics.embedding import (
    EMBEDDING_METRICS,
    EmbeddingMeanDistance,
    EmbeddingNNDistance,
    VendiScore,
    mean_pairwise_distance,
    nn_distance,
    vendi_score,
)
from tests.embedding_fixture import load_samples


@pytest.fixture(scope="module")
def corpus():
    pairs = load_samples(40)
    samples = [Sample(prompt_id=p, output=o) for p, o in pairs]
    emb = Embedder(backend="auto").embed([s.output for s in samples])
    return build_corpus(samples, emb)


def brute_mean_distance(x: np.ndarray) -> float:
    n = len(x)
    sims = x @ x.T
    return float(np.mean([1 - sims[i, j] for i in range(n) for j in range(n) if i != j]))


def brute_nn(x: np.ndarray) -> float:
    sims = (x @ x.T).astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    return float(np.mean(1 - sims.max(axis=1)))


def test_mean_distance_equals_brute_force(corpus):
    x = corpus.embeddings
    assert mean_pairwise_distance(x) == pytest.approx(brute_mean_distance(x.astype(np.float64)), abs=1e-9)
    assert np.isnan(mean_pairwise_distance(x[:1]))


def test_vendi_matches_package(corpus):
    from vendi_score import vendi

    x = corpus.embeddings.astype(np.float64)
    ref = vendi.score_K(x @ x.T)  # vendi divides K by n itself
    assert vendi_score(x) == pytest.approx(ref, rel=1e-6)
    # d×d route (n >= d) agrees too: stack copies past d rows
    big = np.vstack([x] * (x.shape[1] // len(x) + 1))
    assert vendi_score(big) == pytest.approx(vendi.score_K(big @ big.T), rel=1e-6)
    # identical rows count as one
    assert vendi_score(np.repeat(x[:1], 5, axis=0)) == pytest.approx(1.0, abs=1e-6)


def test_nn_distance_equals_brute_force(corpus):
    x = corpus.embeddings
    assert nn_distance(x) == pytest.approx(brute_nn(x), abs=1e-6)
    dup = np.vstack([x, x[:3]])
    assert nn_distance(dup) < nn_distance(x)  # near-duplicates pull it down


@pytest.mark.parametrize("metric", EMBEDDING_METRICS, ids=lambda m: m.name)
def test_within_matches_per_prompt_reference(corpus, metric):
    ref = {
        "embedding_mean_distance": brute_mean_distance,
        "vendi_score": lambda x: __import__("vendi_score.vendi").vendi.score_K(x @ x.T),
        "embedding_nn_distance": brute_nn,
    }[metric.name]
    got = metric.within(corpus)
    x = corpus.embeddings.astype(np.float64)
    for p in range(corpus.n_prompts):
        xp = x[corpus.prompt_slice(p)]
        if len(xp) < 2 and metric.name != "vendi_score":
            assert np.isnan(got[p])
        else:
            assert got[p] == pytest.approx(ref(xp), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("metric", EMBEDDING_METRICS, ids=lambda m: m.name)
def test_across_weighted_equals_expanded_rows(corpus, metric):
    """A replicate equals the pure function on the rows actually repeated w[p] times."""
    pure = {
        "embedding_mean_distance": mean_pairwise_distance,
        "vendi_score": vendi_score,
        "embedding_nn_distance": nn_distance,
    }[metric.name]
    rng = np.random.default_rng(1)
    x = corpus.embeddings.astype(np.float64)
    assert metric.across(corpus, np.ones(corpus.n_prompts)) == pytest.approx(pure(x), rel=1e-5, abs=1e-6)
    for _ in range(20):
        w = np.bincount(rng.integers(0, corpus.n_prompts, corpus.n_prompts), minlength=corpus.n_prompts)
        expected = pure(x[corpus.expand(w)])
        # float32 accumulation (Gram stack, NN products): agreement to ~1e-6
        assert metric.across(corpus, w) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_nn_across_on_many_prompts_matches_expansion():
    """More prompts than the remembered top list: still exact for typical replicates."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    samples = [Sample(prompt_id=f"p{i // 3:03d}", output=f"t{i}") for i in range(300)]
    c = build_corpus(samples, x)
    m = EmbeddingNNDistance()
    for _ in range(10):
        w = np.bincount(rng.integers(0, c.n_prompts, c.n_prompts), minlength=c.n_prompts)
        assert m.across(c, w) == pytest.approx(nn_distance(c.embeddings[c.expand(w)]), abs=1e-6)


def test_vendi_row_fallback_matches_gram_stack(corpus, monkeypatch):
    w = np.arange(corpus.n_prompts) % 3
    stacked = VendiScore().across(corpus, w)
    monkeypatch.setattr("collector.metrics.embedding.GRAM_STACK_MAX_ENTRIES", 0)
    corpus_copy = build_corpus(
        [
            Sample(p, t)
            for p, t in zip(np.repeat(corpus.prompt_ids, np.diff(corpus.offsets)), corpus.texts, strict=True)
        ],
        corpus.embeddings,
    )
    assert VendiScore().across(corpus_copy, w) == pytest.approx(stacked, rel=1e-5)


def test_bad_input_is_named():
    c = build_corpus([Sample("a", "x"), Sample("a", "y")])
    with pytest.raises(ValueError, match="embedded"):
        EmbeddingMeanDistance().within(c)
    with pytest.raises(ValueError, match="2-D"):
        vendi_score(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        nn_distance(np.array([[np.nan, 1.0], [1.0, 0.0]]))


def test_vendi_of_subsets_is_the_subset_kernel_bit_for_bit(corpus):
    """``within_sets`` gathers each subset's kernel from one Gram matrix of the prompt's rows: the
    same einsum reduction per pair as over the subset's own rows, so the same bits, and the value
    equals the vendi-score package's on each subset."""
    from vendi_score import vendi

    x = corpus.embeddings[corpus.prompt_slice(0)].astype(np.float64)
    n = x.shape[0]
    rng = np.random.default_rng(3)
    sets = np.zeros((60, n))
    for s, k in enumerate(rng.integers(1, n + 1, size=60)):
        sets[s, rng.choice(n, size=k, replace=False)] = 1
    got = VendiScore().within_sets([""] * n, x, sets)
    for row, value in zip(sets.astype(bool), got, strict=True):
        xs = x[row][None]
        k = xs.shape[1]
        lam = np.linalg.eigvalsh(np.einsum("skd,sjd->skj", xs, xs) / k)
        lam = np.where(lam > 0, lam, 1.0)
        assert value == np.exp(-(lam * np.log(lam)).sum(axis=1))[0]  # the previous formula, exactly
        assert value == pytest.approx(vendi.score_K(x[row] @ x[row].T), rel=1e-6)
