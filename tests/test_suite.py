"""The bootstrap driver: scopes, intervals, reproducibility and order independence."""

from __future__ import annotations

import numpy as np
import pytest

from collector.metrics.base import Corpus, Sample, build_corpus
from collector.metrics.suite import prompt_weights, score_corpus


class MeanChars:
    """Mean output length in characters: a real, tiny metric whose values are easy to check."""

    name = "mean_chars"
    family = "length"
    higher_is_diverse = True
    needs_embeddings = False

    def within(self, corpus: Corpus) -> np.ndarray:
        return np.array([np.mean([len(t) for t in corpus.prompt_texts(p)]) for p in range(corpus.n_prompts)])

    def across(self, corpus: Corpus, weights: np.ndarray) -> float:
        idx = corpus.expand(weights)
        return float(np.mean([len(corpus.texts[i]) for i in idx]))


def samples() -> list[Sample]:
    rng = np.random.default_rng(3)
    out = []
    for p in range(12):
        for _ in range(p % 3 + 2):  # unequal group sizes: 2, 3 or 4 outputs
            out.append(Sample(prompt_id=f"p{p}", output="x" * int(rng.integers(5 + 3 * p, 30 + 3 * p))))
    return out


def test_prompt_weights_are_multiplicities() -> None:
    w = prompt_weights(7, 50, seed=1)
    assert w.shape == (50, 7)
    assert (w.sum(axis=1) == 7).all()
    assert (w >= 0).all()
    assert np.array_equal(w, prompt_weights(7, 50, seed=1))
    assert not np.array_equal(w, prompt_weights(7, 50, seed=2))


def test_within_is_mean_of_prompt_means_and_across_is_pooled() -> None:
    s = samples()
    result = score_corpus(build_corpus(s), [MeanChars()], n_boot=300, seed=0)
    groups: dict[str, list[int]] = {}
    for x in s:
        groups.setdefault(x.prompt_id, []).append(len(x.output))
    within = result.get("mean_chars", "within")
    across = result.get("mean_chars", "across")
    assert within.value == pytest.approx(np.mean([np.mean(g) for g in groups.values()]))
    assert across.value == pytest.approx(np.mean([len(x.output) for x in s]))
    # unequal group sizes make the two scopes differ: the test would not see a mix-up otherwise
    assert within.value != pytest.approx(across.value)
    for v in (within, across):
        assert v.ci_low < v.value < v.ci_high
        assert v.n_samples == len(s) and v.n_prompts == 12
    assert result.per_prompt["mean_chars"]["p0"] == pytest.approx(np.mean(groups["p0"]))


def test_interval_shrinks_with_more_prompts() -> None:
    rng = np.random.default_rng(0)

    def batch(n_prompts: int) -> list[Sample]:
        return [
            Sample(prompt_id=f"p{p}", output="x" * int(rng.integers(10, 60)))
            for p in range(n_prompts)
            for _ in range(3)
        ]

    small = score_corpus(build_corpus(batch(10)), [MeanChars()], n_boot=400).get("mean_chars", "within")
    large = score_corpus(build_corpus(batch(160)), [MeanChars()], n_boot=400).get("mean_chars", "within")
    assert (large.ci_high - large.ci_low) < 0.5 * (small.ci_high - small.ci_low)


def test_reproducible_and_independent_of_sample_order() -> None:
    s = samples()
    a = score_corpus(build_corpus(s), [MeanChars()], seed=5)
    b = score_corpus(build_corpus(list(reversed(s))), [MeanChars()], seed=5)
    assert a.values == b.values
    c = score_corpus(build_corpus(s), [MeanChars()], seed=6)
    assert c.get("mean_chars", "within").ci_low != a.get("mean_chars", "within").ci_low


def test_empty_batch_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty batch"):
        score_corpus(build_corpus([]), [MeanChars()])


def test_half_samples_hold_half_the_prompts_without_copies() -> None:
    from collector.metrics.suite import half_sample_weights

    w = half_sample_weights(9, 30, seed=0)
    assert w.shape == (30, 9)
    assert set(np.unique(w)) <= {0, 1}
    assert (w.sum(axis=1) == 4).all()
    assert len({tuple(r) for r in w}) > 20  # really random halves


def test_across_interval_does_not_invent_duplicates() -> None:
    """Copies of a prompt would look like duplicate outputs; the across interval must not see them."""
    from collector.metrics.registry import select_metrics

    distinct = [
        Sample(prompt_id=f"p{p}", output=f"answer number {p} variant {k}")
        for p in range(10)
        for k in range(3)
    ]
    v = score_corpus(build_corpus(distinct), select_metrics(["duplicate_rate"]), n_boot=100).get(
        "duplicate_rate", "across"
    )
    assert (v.value, v.ci_low, v.ci_high) == (0.0, 0.0, 0.0)


def test_expensive_metrics_can_cap_their_across_replicates() -> None:
    calls: list[int] = []

    class Capped(MeanChars):
        max_replicates = 5

        def across(self, corpus: Corpus, weights: np.ndarray) -> float:
            calls.append(int(weights.sum()))
            return super().across(corpus, weights)

    v = score_corpus(build_corpus(samples()), [Capped()], n_boot=40).get("mean_chars", "across")
    assert len(calls) == 1 + 5  # the point estimate, then five half-samples
    assert calls[0] == 12 and set(calls[1:]) == {6}
    assert v.ci_low < v.value < v.ci_high


def test_normal_quantiles_are_scipys_bit_for_bit() -> None:
    """The table that spares the CLI the scipy.stats import gives exactly scipy's critical values."""
    from scipy.stats import norm

    from collector.metrics.suite import NORMAL_QUANTILES, normal_quantile

    for alpha in [*NORMAL_QUANTILES, 0.2, 0.001]:
        assert normal_quantile(alpha) == float(norm.ppf(1 - alpha / 2))
