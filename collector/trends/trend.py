"""Trend over the last K versions of one metric: Theil–Sen slope and the Mann–Kendall test.

Both are rank-based, so one outlying version cannot fake or hide a trend.  Pure; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_LAST_K = 5
# A trend counts only when its slope adds up to this relative loss over the window (the
# comparison's 5% minimum effect): -0.9% per version over 5 versions (3.6%) is not a decline.
DEFAULT_MIN_TREND_EFFECT = 0.05


@dataclass(frozen=True)
class MannKendall:
    """Mann–Kendall statistic ``S``, its variance (ties corrected), ``z`` and the two-sided p-value."""

    s: int
    var_s: float
    z: float
    p_value: float


def mann_kendall(values: Sequence[float], *, continuity: bool = True) -> MannKendall:
    """The Mann–Kendall trend test of a series in time order (NaNs dropped).

    ``S = sum_{i<j} sign(x_j - x_i)``; ``Var(S) = [n(n-1)(2n+5) - sum_t t(t-1)(2t+5)] / 18`` where
    ``t`` runs over the sizes of groups of tied values; ``z = (S - sign(S)) / sqrt(Var S)`` with the
    continuity correction (``S / sqrt(Var S)`` without it); two-sided normal p-value.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n < 3:
        return MannKendall(0, 0.0, 0.0, 1.0)
    diff = x[None, :] - x[:, None]
    s = int(np.sign(diff[np.triu_indices(n, k=1)]).sum())
    _, counts = np.unique(x, return_counts=True)
    ties = float(np.sum(counts * (counts - 1) * (2 * counts + 5)))
    var_s = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if var_s <= 0 or s == 0:
        return MannKendall(s, var_s, 0.0, 1.0)
    num = s - math.copysign(1, s) if continuity else s
    z = num / math.sqrt(var_s)
    from scipy import stats  # here, not at import: scipy.stats costs the CLI ~0.8 s of start-up

    p = float(2 * stats.norm.sf(abs(z)))
    return MannKendall(s, var_s, z, min(1.0, p))


@dataclass(frozen=True)
class Trend:
    """The trend of the last ``n_versions`` values, in oriented relative units per version step.

    ``slope`` is the Theil–Sen slope divided by ``|first value of the window|`` and signed so that a
    negative number means diversity *falls* (``-0.05``: 5% of the first value lost per version).
    ``significant_decline``: Mann–Kendall ``p < alpha`` and an oriented slope whose total over the
    window, ``slope * (n_versions - 1)``, is a loss of at least ``min_effect`` (default 5%).
    """

    n_versions: int
    slope: float
    slope_ci_low: float
    slope_ci_high: float
    mk_s: int
    mk_z: float
    p_value: float
    higher_is_diverse: bool
    significant_decline: bool


def trend(
    values: Sequence[float],
    *,
    higher_is_diverse: bool,
    last_k: int = DEFAULT_LAST_K,
    alpha: float = 0.05,
    min_effect: float = DEFAULT_MIN_TREND_EFFECT,
) -> Trend:
    """Theil–Sen slope and Mann–Kendall test over the last ``last_k`` finite values (oldest first).

    With ``n`` versions and no ties the smallest attainable two-sided p-value is about 0.028 at
    ``n = 5`` (a strictly monotone run), 0.12 at ``n = 4``; fewer than 3 versions give no test.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)][-last_k:] if last_k > 0 else x[np.isfinite(x)]
    n = int(x.size)
    nan = float("nan")
    if n < 2 or x[0] == 0:
        return Trend(n, nan, nan, nan, 0, 0.0, 1.0, higher_is_diverse, False)
    sign = 1.0 if higher_is_diverse else -1.0
    scale = sign / abs(float(x[0]))
    t = np.arange(n, dtype=float)
    from scipy import stats

    res = stats.theilslopes(x, t, alpha=1 - alpha)
    lo, hi = sorted((float(res.low_slope) * scale, float(res.high_slope) * scale))
    slope = float(res.slope) * scale
    mk = mann_kendall(x)
    return Trend(
        n_versions=n,
        slope=slope,
        slope_ci_low=lo,
        slope_ci_high=hi,
        mk_s=mk.s,
        mk_z=mk.z,
        p_value=mk.p_value,
        higher_is_diverse=higher_is_diverse,
        significant_decline=bool(mk.p_value < alpha and slope < 0 and -slope * (n - 1) >= min_effect),
    )
