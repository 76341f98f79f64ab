"""Run a set of metrics over a batch, in both scopes, with bootstrap confidence intervals.

The bootstrap resamples *prompts* with replacement (``n_boot`` replicates, seeded).  One matrix of
prompt multiplicities is drawn per call and shared by every metric, so replicates are paired
across metrics and reproducible for a given seed.

* ``within``: each prompt's value once; a replicate is the weighted mean over prompts, and the
  interval is the plain percentile interval (a mean of prompt values has no resampling bias).
* ``across``: the pooled value is recomputed by the metric itself on subsets of prompts.  A
  bootstrap draw with replacement would put two copies of a prompt's outputs in the pool, and
  copies look like duplicates to every pairwise or set-level score, so the interval comes from
  the delete-d jackknife instead (Shao & Wu 1989) with half-samples: ``n_boot`` random halves of
  the prompts, drawn without replacement (no copies), standard error
  ``sd(half values) * sqrt(m / (P - m))`` with ``m = P // 2``, and a normal interval around the
  full-data value.  See docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from collector.metrics.base import Corpus, Metric, Sample, build_corpus
from collector.metrics.defaults import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from collector.metrics.registry import select_metrics
from collector.metrics.result import MetricValue, SuiteResult

# scipy.stats.norm.ppf(1 - alpha / 2) of the usual alphas, bit for bit (tests/test_suite.py checks them):
# importing scipy.stats costs every `score` / `compare` ~0.8 s of start-up for one number.
NORMAL_QUANTILES = {0.05: 1.959963984540054, 0.1: 1.6448536269514722, 0.01: 2.5758293035489004}


def normal_quantile(alpha: float) -> float:
    """The two-sided normal critical value ``z`` of ``alpha`` (``norm.ppf(1 - alpha / 2)``)."""
    if alpha in NORMAL_QUANTILES:
        return NORMAL_QUANTILES[alpha]
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def prompt_weights(n_prompts: int, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap replicates as prompt multiplicities, shape (n_boot, n_prompts), rows sum to P."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_prompts, size=(n_boot, n_prompts))
    offsets = np.arange(n_boot)[:, None] * n_prompts
    counts = np.bincount((draws + offsets).ravel(), minlength=n_boot * n_prompts)
    return counts.reshape(n_boot, n_prompts)


def half_sample_weights(n_prompts: int, n_sets: int, seed: int) -> np.ndarray:
    """Random halves of the prompts as 0/1 weights, shape (n_sets, n_prompts), ``P // 2`` ones per row."""
    rng = np.random.default_rng(seed)
    keys = rng.random((n_sets, n_prompts))
    chosen = np.argsort(keys, axis=1)[:, : n_prompts // 2]
    weights = np.zeros((n_sets, n_prompts), dtype=np.int64)
    np.put_along_axis(weights, chosen, 1, axis=1)
    return weights


def _percentiles(reps: np.ndarray, alpha: float) -> tuple[float, float]:
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def within_value(per_prompt: np.ndarray, weights: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """Mean over prompts of the per-prompt values (NaNs skipped) and its percentile interval."""
    valid = np.isfinite(per_prompt)
    if not valid.any():
        return float("nan"), float("nan"), float("nan")
    point = float(per_prompt[valid].mean())
    vals = np.where(valid, per_prompt, 0.0)
    w = weights * valid
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = (w @ vals) / w.sum(axis=1)
    lo, hi = _percentiles(reps, alpha)
    return point, lo, hi


def replicates_for(metric: Metric, halves: np.ndarray) -> np.ndarray:
    """The half-samples a metric is recomputed on: all, or its ``max_replicates`` first ones.

    A metric whose every recomputation is expensive (Vendi: one d x d eigendecomposition each)
    may cap its replicates; 50 half-samples still estimate a standard error to about 10%.
    """
    cap = getattr(metric, "max_replicates", None)
    return halves if cap is None else halves[:cap]


def replicate_values(metric: Metric, corpus: Corpus, weights: np.ndarray) -> np.ndarray:
    """The metric's pooled value for every row of prompt weights (its ``max_replicates`` first rows).

    A metric with ``across_many`` computes them all at once from per-prompt statistics (the lexical
    suite, see ``lexical_replicates``); any other metric is called once per row.
    """
    rows = replicates_for(metric, weights)
    many = getattr(metric, "across_many", None)
    if many is not None:
        return np.asarray(many(corpus, rows), dtype=float)
    return np.array([metric.across(corpus, w) for w in rows], dtype=float)


def start_replicates(metrics: Sequence[Metric], corpus: Corpus, halves: np.ndarray) -> None:
    """Start, in the background, the replicates of the metrics that have background work (the
    compression ratio's gzips run in threads while the other metrics are computed); the values are
    the same as computed in turn."""
    if corpus.n_prompts < 2:
        return  # no interval: ``across_value`` computes no replicate
    for metric in metrics:
        start = getattr(metric, "start_replicates", None)
        if start is not None and not (metric.needs_embeddings and corpus.embeddings is None):
            start(corpus, replicates_for(metric, halves))


def across_value(
    metric: Metric, corpus: Corpus, halves: np.ndarray, alpha: float
) -> tuple[float, float, float]:
    """Pooled value and its delete-half jackknife normal interval (NaN with fewer than 2 prompts)."""
    point = float(metric.across(corpus, np.ones(corpus.n_prompts, dtype=np.int64)))
    m = corpus.n_prompts // 2
    if not np.isfinite(point) or m < 1:
        return point, float("nan"), float("nan")
    reps = replicate_values(metric, corpus, halves)
    reps = reps[np.isfinite(reps)]
    if reps.size < 2:
        return point, float("nan"), float("nan")
    se = float(reps.std(ddof=1)) * np.sqrt(m / (corpus.n_prompts - m))
    z = normal_quantile(alpha)
    return point, point - z * se, point + z * se


def score_corpus(
    corpus: Corpus,
    metrics: Sequence[Metric],
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    alpha: float = 0.05,
    progress: Callable[[str], None] | None = None,
) -> SuiteResult:
    """Score an already grouped corpus with the given metrics."""
    if corpus.n_samples == 0:
        raise ValueError("cannot score an empty batch: no outputs")
    weights = prompt_weights(corpus.n_prompts, n_boot, seed)
    halves = half_sample_weights(corpus.n_prompts, n_boot, seed)
    values: list[MetricValue] = []
    per_prompt: dict[str, dict[str, float]] = {}
    start_replicates(metrics, corpus, halves)
    for metric in metrics:
        if metric.needs_embeddings and corpus.embeddings is None:
            continue
        if progress:
            progress(metric.name)
        pp = np.asarray(metric.within(corpus), dtype=float)
        per_prompt[metric.name] = {
            pid: float(v) for pid, v in zip(corpus.prompt_ids, pp, strict=True) if np.isfinite(v)
        }
        scored = {
            "within": within_value(pp, weights, alpha),
            "across": across_value(metric, corpus, halves, alpha),
        }
        for scope, (value, lo, hi) in scored.items():
            values.append(
                MetricValue(
                    metric=metric.name,
                    scope=scope,  # type: ignore[arg-type]
                    value=value,
                    ci_low=lo,
                    ci_high=hi,
                    n_samples=corpus.n_samples,
                    n_prompts=corpus.n_prompts,
                    family=metric.family,
                    higher_is_diverse=metric.higher_is_diverse,
                )
            )
    return SuiteResult(
        n_samples=corpus.n_samples,
        n_prompts=corpus.n_prompts,
        values=values,
        per_prompt=per_prompt,
        n_blank=sum(1 for t in corpus.texts if not t.strip()),
        seed=seed,
        n_bootstrap=n_boot,
    )


def score_samples(
    samples: Sequence[Sample],
    embeddings: np.ndarray | None = None,
    *,
    metrics: Sequence[str] | None = None,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    alpha: float = 0.05,
    progress: Callable[[str], None] | None = None,
) -> SuiteResult:
    """Score samples (``embeddings`` rows aligned with ``samples``; None skips embedding metrics)."""
    corpus = build_corpus(samples, embeddings)
    return score_corpus(
        corpus, select_metrics(metrics), n_boot=n_boot, seed=seed, alpha=alpha, progress=progress
    )
