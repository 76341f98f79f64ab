"""Paired comparison of one metric between a baseline version and a candidate version.

Versions are scored on the same probe set, so the ``within`` value of prompt ``p`` in the baseline
pairs with the ``within`` value of prompt ``p`` in the candidate.  Pairing removes the (large)
between-prompt variation and leaves only the sampling noise of each prompt, which is what makes a
40-prompt probe set sensitive enough.

* Effect: the relative change of the mean over shared prompts, ``cand_mean / base_mean - 1``.
* Interval: a paired percentile bootstrap: the *same* resampled prompt indices on both sides.
* p-value: a sign-flip permutation test on the paired differences (see :func:`compare`).

Pure: numbers in, numbers out; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

DEFAULT_MIN_EFFECT = 0.05


@dataclass(frozen=True)
class Comparison:
    """A candidate against a baseline for one metric.

    ``rel_change`` is in the metric's own direction (``+0.10``: the value rose by 10%);
    ``diversity_change`` is oriented so that a negative number always means *less* diverse.
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


def _orient(rel: float, lo: float, hi: float, higher_is_diverse: bool) -> tuple[float, float, float]:
    if higher_is_diverse:
        return rel, lo, hi
    return -rel, -hi, -lo


def _is_decline(div: float, div_hi: float, p: float, alpha: float, min_effect: float) -> bool:
    return bool(
        math.isfinite(div) and math.isfinite(div_hi) and div_hi < 0 and p < alpha and -div >= min_effect
    )


def _nan_comparison(
    n: int, b: float, c: float, higher_is_diverse: bool, alpha: float, me: float
) -> Comparison:
    nan = float("nan")
    return Comparison(n, b, c, nan, nan, nan, nan, nan, nan, 1.0, higher_is_diverse, False, alpha, me)


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
    min_effect: float = DEFAULT_MIN_EFFECT,
) -> Comparison:
    """Compare per-prompt values ``{prompt_id: value}`` of two versions, paired by prompt.

    Only prompts present and finite on both sides count (``n_pairs``).  ``significant_decline``
    needs all three: the ``1 - alpha`` interval of ``diversity_change`` entirely below 0, the
    sign-flip p-value below ``alpha``, and a decline of at least ``min_effect`` (relative).

    Why the sign-flip test for the p-value rather than the bootstrap: the percentile bootstrap
    interval is known to be too narrow for small ``n`` (it under-covers at 10-20 prompts), while the
    sign-flip test keeps its level at any ``n``; requiring both is the conservative choice for an
    alarm.  The test is on the mean difference, which has the sign of the relative change.
    """
    b, c = paired_arrays(baseline, candidate)
    n = int(b.size)
    base_mean = float(b.mean()) if n else float("nan")
    cand_mean = float(c.mean()) if n else float("nan")
    if n < 2 or not math.isfinite(base_mean) or base_mean == 0:
        return _nan_comparison(n, base_mean, cand_mean, higher_is_diverse, alpha, min_effect)
    rel = cand_mean / base_mean - 1
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = c[idx].mean(axis=1) / b[idx].mean(axis=1) - 1
    reps = reps[np.isfinite(reps)]
    lo, hi = (float(x) for x in np.quantile(reps, [alpha / 2, 1 - alpha / 2]))
    # A negative baseline mean would flip the meaning of the ratio; diversity metrics are >= 0.
    p = sign_flip_p_value(c - b, n_perm=n_boot, seed=seed + 1)
    div, div_lo, div_hi = _orient(rel, lo, hi, higher_is_diverse)
    return Comparison(
        n_pairs=n,
        base_mean=base_mean,
        cand_mean=cand_mean,
        rel_change=rel,
        ci_low=lo,
        ci_high=hi,
        diversity_change=div,
        diversity_ci_low=div_lo,
        diversity_ci_high=div_hi,
        p_value=p,
        higher_is_diverse=higher_is_diverse,
        significant_decline=_is_decline(div, div_hi, p, alpha, min_effect),
        alpha=alpha,
        min_effect=min_effect,
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
    min_effect: float = DEFAULT_MIN_EFFECT,
    spread_scale: float | None = None,
) -> Comparison:
    """Compare ``across`` (pooled) values from caller-supplied *paired* bootstrap replicates.

    With ``spread_scale`` the replicates are subsample (e.g. delete-half jackknife) values rather
    than bootstrap ones: their relative changes are centred on the point estimate's and their
    spread multiplied by ``spread_scale`` (``sqrt(m / (P - m))`` for subsets of m of P prompts)
    before the percentile interval and p-value are read off.

    A pooled value is not an average of per-prompt values, so it cannot be resampled from them:
    the caller (the suite) recomputes the metric on both versions' raw outputs for the same prompt
    multiplicity vectors ``w_r`` and passes ``base_reps[r]``, ``cand_reps[r]``.  Two independent
    CIs cannot be combined into a paired one.  ``base_value``/``cand_value`` are the point
    estimates (``w == 1``); without them the replicate means are used.  The p-value is the
    bootstrap one, ``2 * min(P(rel <= 0), P(rel >= 0))`` over the replicates.
    """
    b = np.asarray(base_reps, dtype=float)
    c = np.asarray(cand_reps, dtype=float)
    if b.shape != c.shape or b.ndim != 1:
        raise ValueError(f"replicates must be paired 1-d arrays of one length, got {b.shape} and {c.shape}")
    ok = np.isfinite(b) & np.isfinite(c) & (b != 0)
    b, c = b[ok], c[ok]
    bv = float(base_value) if base_value is not None else (float(b.mean()) if b.size else float("nan"))
    cv = float(cand_value) if cand_value is not None else (float(c.mean()) if c.size else float("nan"))
    if b.size < 2 or not math.isfinite(bv) or bv == 0:
        return _nan_comparison(n_pairs, bv, cv, higher_is_diverse, alpha, min_effect)
    reps = c / b - 1
    rel = cv / bv - 1
    if spread_scale is not None:
        reps = rel + (reps - reps.mean()) * spread_scale
    lo, hi = (float(x) for x in np.quantile(reps, [alpha / 2, 1 - alpha / 2]))
    p = float(min(1.0, 2 * min(np.mean(reps <= 0), np.mean(reps >= 0)) + 1 / (reps.size + 1)))
    div, div_lo, div_hi = _orient(rel, lo, hi, higher_is_diverse)
    return Comparison(
        n_pairs=n_pairs,
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
        significant_decline=_is_decline(div, div_hi, p, alpha, min_effect),
        alpha=alpha,
        min_effect=min_effect,
    )
