"""Paired comparison of one metric between a baseline version and a candidate version.

Versions are scored on the same probe set, so the ``within`` value of prompt ``p`` in the baseline
pairs with the ``within`` value of prompt ``p`` in the candidate.  Pairing removes the (large)
between-prompt variation and leaves only the sampling noise of each prompt, which is what makes a
40-prompt probe set sensitive enough.

* Effect, on the metric's scale (:mod:`collector.trends.change`): for a rate bounded in [0, 1] the
  absolute difference of the means over shared prompts, ``cand_mean - base_mean`` (defined at a
  baseline of 0); for an unbounded metric the relative change ``cand_mean / base_mean - 1``.  The
  relative change is kept as well (``rel_change``, ``diversity_change``: the store keeps them beside
  the change).
* Interval: a paired percentile bootstrap: the *same* resampled prompt indices on both sides,
  clipped to the changes the metric's range allows.
* p-value: a sign-flip permutation test on the paired differences (see :func:`compare`).
* ``min_detectable``: the smallest decline the data could have detected (about 80% power), on the
  metric's scale; infinite when there are too few prompts for the test to reach ``alpha`` at all.

Pure: numbers in, numbers out; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from collector.trends.change import Scale, clip_change_interval, clip_relative_interval, scale_of
from collector.vocabulary import diversity_oriented

DEFAULT_MIN_EFFECT = 0.05
DEFAULT_MIN_DIFFERENCE = 0.02  # 2 percentage points: the minimum effect of a bounded rate
# z_{1-alpha/2} + z_{power} for alpha = 0.05 and 80% power: the usual sample-size multiplier.
DETECTABLE_Z = 1.96 + 0.84


def min_pairs_for(alpha: float) -> int:
    """Fewest paired prompts with which the two-sided sign-flip test can reach ``p < alpha``:
    the most extreme of the ``2**n`` sign patterns has p = ``2 / 2**n`` (6 prompts at 0.05)."""
    n = 1
    while 2.0 / 2**n >= alpha:
        n += 1
    return n


@dataclass(frozen=True)
class Comparison:
    """A candidate against a baseline for one metric.

    ``rel_change`` is in the metric's own direction (``+0.10``: the value rose by 10%);
    ``diversity_change`` is oriented so that a negative number always means *less* diverse (both
    relative, NaN from a baseline of 0).  ``change`` is the change on the metric's ``scale``, in its
    own direction: ``cand - base`` for ``difference``, ``cand / base - 1`` for ``ratio``; it and its
    interval are what people read (:func:`collector.trends.change.format_change`).
    ``significant_decline`` is decided on that scale.
    """

    n_pairs: int
    base_mean: float
    cand_mean: float
    rel_change: float
    ci_low: float
    ci_high: float
    diversity_change: float
    diversity_ci_low: float
    diversity_ci_high: float
    p_value: float
    higher_is_diverse: bool
    significant_decline: bool
    alpha: float = 0.05
    min_effect: float = DEFAULT_MIN_EFFECT
    scale: Scale = "ratio"
    change: float = float("nan")
    change_ci_low: float = float("nan")
    change_ci_high: float = float("nan")
    min_detectable: float = float("inf")

    @property
    def scorable(self) -> bool:
        """Whether the change could be computed at all (enough pairs, a usable baseline)."""
        return math.isfinite(self.change)

    @property
    def can_reach_significance(self) -> bool:
        """Whether the test could have flagged a decline with these many pairs."""
        return self.scorable and self.n_pairs >= min_pairs_for(self.alpha)


def _is_decline(div: float, div_hi: float, p: float, alpha: float, min_effect: float) -> bool:
    return bool(
        math.isfinite(div) and math.isfinite(div_hi) and div_hi < 0 and p < alpha and -div >= min_effect
    )


def _nan_comparison(
    n: int, b: float, c: float, higher_is_diverse: bool, alpha: float, me: float, scale: Scale = "ratio"
) -> Comparison:
    nan = float("nan")
    return Comparison(n, b, c, nan, nan, nan, nan, nan, nan, 1.0, higher_is_diverse, False, alpha, me, scale)


def _min_effect(scale: Scale, min_effect: float | None) -> float:
    if min_effect is not None:
        return min_effect
    return DEFAULT_MIN_DIFFERENCE if scale == "difference" else DEFAULT_MIN_EFFECT


def _quantiles(reps: np.ndarray, alpha: float, fallback: float) -> tuple[float, float]:
    reps = reps[np.isfinite(reps)]
    if not reps.size:
        return fallback, fallback
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _build(
    *,
    metric: str | None,
    scale: Scale,
    n: int,
    bv: float,
    cv: float,
    change_reps: np.ndarray,
    rel_reps: np.ndarray,
    p: float,
    higher_is_diverse: bool,
    alpha: float,
    min_effect: float,
    min_detectable: float,
) -> Comparison:
    """A comparison from its point estimates and paired replicates of the change on both scales."""
    rel = cv / bv - 1 if bv != 0 else float("nan")
    lo, hi = _quantiles(rel_reps, alpha, rel) if math.isfinite(rel) else (rel, rel)
    chg = cv - bv if scale == "difference" else rel
    clo, chi = _quantiles(change_reps, alpha, chg)
    if metric is not None:
        lo, hi = clip_relative_interval(metric, bv, lo, hi)
        clo, chi = clip_change_interval(metric, bv, clo, chi)
    div, div_lo, div_hi = diversity_oriented(rel, lo, hi, higher_is_diverse)
    cdiv, _, cdiv_hi = diversity_oriented(chg, clo, chi, higher_is_diverse)
    return Comparison(
        n_pairs=n,
        base_mean=bv,
        cand_mean=cv,
        rel_change=rel,
        ci_low=lo,
        ci_high=hi,
        diversity_change=div,
        diversity_ci_low=div_lo,
        diversity_ci_high=div_hi,
        p_value=p,
        higher_is_diverse=higher_is_diverse,
        significant_decline=_is_decline(cdiv, cdiv_hi, p, alpha, min_effect),
        alpha=alpha,
        min_effect=min_effect,
        scale=scale,
        change=chg,
        change_ci_low=clo,
        change_ci_high=chi,
        min_detectable=min_detectable,
    )


def paired_arrays(
    baseline: Mapping[str, float], candidate: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The values of the prompts both sides scored (finite on both), in sorted prompt-id order."""
    shared = sorted(set(baseline) & set(candidate))
    b = np.array([float(baseline[k]) for k in shared], dtype=float)
    c = np.array([float(candidate[k]) for k in shared], dtype=float)
    ok = np.isfinite(b) & np.isfinite(c)
    return b[ok], c[ok]


def sign_flip_p_value(diffs: np.ndarray, *, n_perm: int = 2000, seed: int = 0) -> float:
    """Two-sided p-value of ``mean(diffs) == 0`` by randomly flipping the sign of each paired difference.

    Exact in level (up to Monte Carlo error) whenever each difference is symmetric about 0 under the
    null, which holds when the two versions' outputs for a prompt are exchangeable.  The ``+1`` in
    numerator and denominator keeps it a valid p-value (never 0).
    """
    d = np.asarray(diffs, dtype=float)
    if d.size == 0 or not np.any(d):
        return 1.0
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_perm, d.size))
    null = np.abs(signs @ d)
    observed = abs(float(d.sum()))
    # tolerance: ties with the observed statistic (e.g. all |d| equal) must count as "as extreme"
    extreme = int(np.count_nonzero(null >= observed * (1 - 1e-12)))
    return (1 + extreme) / (1 + n_perm)


def compare(
    baseline: Mapping[str, float],
    candidate: Mapping[str, float],
    *,
    higher_is_diverse: bool,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    min_effect: float | None = None,
    metric: str | None = None,
) -> Comparison:
    """Compare per-prompt values ``{prompt_id: value}`` of two versions, paired by prompt.

    Only prompts present and finite on both sides count (``n_pairs``).  ``metric`` (its name)
    chooses the scale and the range the intervals are clipped to (without it: ratio, unclipped).
    ``significant_decline`` needs all three: the ``1 - alpha`` interval of the oriented change
    entirely below 0, the sign-flip p-value below ``alpha``, and a decline of at least
    ``min_effect`` (default 5% relative, or 2 percentage points on the ``difference`` scale).

    Why the sign-flip test for the p-value rather than the bootstrap: the percentile bootstrap
    interval is known to be too narrow for small ``n`` (it under-covers at 10-20 prompts), while the
    sign-flip test keeps its level at any ``n`` and at a baseline of 0; requiring both is the
    conservative choice for an alarm.  The test is on the mean difference, which has the sign of
    the change.
    """
    scale: Scale = scale_of(metric) if metric is not None else "ratio"
    me = _min_effect(scale, min_effect)
    b, c = paired_arrays(baseline, candidate)
    n = int(b.size)
    base_mean = float(b.mean()) if n else float("nan")
    cand_mean = float(c.mean()) if n else float("nan")
    usable_base = scale == "difference" or base_mean > 0  # a ratio needs a positive baseline
    if n < 2 or not math.isfinite(base_mean) or not usable_base:
        return _nan_comparison(n, base_mean, cand_mean, higher_is_diverse, alpha, me, scale)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    bm, cm = b[idx].mean(axis=1), c[idx].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_reps = cm / bm - 1
    d = c - b
    p = sign_flip_p_value(d, n_perm=n_boot, seed=seed + 1)
    detectable = float("inf")
    if n >= min_pairs_for(alpha):
        sd = float(d.std(ddof=1)) * DETECTABLE_Z / math.sqrt(n)
        detectable = max(me, sd if scale == "difference" else sd / base_mean)
    return _build(
        metric=metric,
        scale=scale,
        n=n,
        bv=base_mean,
        cv=cand_mean,
        change_reps=cm - bm if scale == "difference" else rel_reps,
        rel_reps=rel_reps,
        p=p,
        higher_is_diverse=higher_is_diverse,
        alpha=alpha,
        min_effect=me,
        min_detectable=detectable,
    )


def compare_paired_replicates(
    base_reps: np.ndarray,
    cand_reps: np.ndarray,
    *,
    higher_is_diverse: bool,
    base_value: float | None = None,
    cand_value: float | None = None,
    n_pairs: int = 0,
    alpha: float = 0.05,
    min_effect: float | None = None,
    spread_scale: float | None = None,
    metric: str | None = None,
) -> Comparison:
    """Compare ``across`` (pooled) values from caller-supplied *paired* bootstrap replicates.

    With ``spread_scale`` the replicates are subsample (e.g. delete-half jackknife) values rather
    than bootstrap ones: their changes are centred on the point estimate's and their spread
    multiplied by ``spread_scale`` (``sqrt(m / (P - m))`` for subsets of m of P prompts) before the
    percentile interval and p-value are read off.

    A pooled value is not an average of per-prompt values, so it cannot be resampled from them:
    the caller (the suite) recomputes the metric on both versions' raw outputs for the same prompt
    multiplicity vectors ``w_r`` and passes ``base_reps[r]``, ``cand_reps[r]``.  Two independent
    CIs cannot be combined into a paired one.  ``base_value``/``cand_value`` are the point
    estimates (``w == 1``); without them the replicate means are used.  The p-value is the
    bootstrap one, ``2 * min(P(change <= 0), P(change >= 0))`` over the replicates.  ``metric``
    chooses the scale and clipping as in :func:`compare`.
    """
    scale: Scale = scale_of(metric) if metric is not None else "ratio"
    me = _min_effect(scale, min_effect)
    b = np.asarray(base_reps, dtype=float)
    c = np.asarray(cand_reps, dtype=float)
    if b.shape != c.shape or b.ndim != 1:
        raise ValueError(f"replicates must be paired 1-d arrays of one length, got {b.shape} and {c.shape}")
    ok = np.isfinite(b) & np.isfinite(c) & ((b != 0) | (scale == "difference"))
    b, c = b[ok], c[ok]
    bv = float(base_value) if base_value is not None else (float(b.mean()) if b.size else float("nan"))
    cv = float(cand_value) if cand_value is not None else (float(c.mean()) if c.size else float("nan"))
    usable_base = scale == "difference" or bv > 0
    if b.size < 2 or not math.isfinite(bv) or not math.isfinite(cv) or not usable_base:
        return _nan_comparison(n_pairs, bv, cv, higher_is_diverse, alpha, me, scale)

    def centred(reps: np.ndarray, point: float) -> np.ndarray:
        if spread_scale is None or not math.isfinite(point):
            return reps
        return point + (reps - reps.mean()) * spread_scale

    with np.errstate(divide="ignore", invalid="ignore"):
        rel_reps = centred(c / b - 1, cv / bv - 1 if bv else float("nan"))
    change_reps = centred(c - b, cv - bv) if scale == "difference" else rel_reps
    p = float(min(1.0, 2 * min(np.mean(change_reps <= 0), np.mean(change_reps >= 0)) + 1 / (b.size + 1)))
    spread = float(change_reps.std(ddof=1)) * DETECTABLE_Z if change_reps.size > 1 else float("inf")
    return _build(
        metric=metric,
        scale=scale,
        n=n_pairs,
        bv=bv,
        cv=cv,
        change_reps=change_reps,
        rel_reps=rel_reps,
        p=p,
        higher_is_diverse=higher_is_diverse,
        alpha=alpha,
        min_effect=me,
        min_detectable=max(me, spread),
    )
