"""How a change of one metric between two versions is measured and written: one way, everywhere.

Two scales, chosen per metric by its range:

* ``difference``: rates bounded in [0, 1] (distinct-n, normalised n-gram entropy, Self-BLEU,
  repetition and duplicate rates) change by an absolute difference, written in percentage points
  (``+68.2 pp``).  A relative change of a rate that starts near 0 is unreadable (Self-BLEU 0.043 →
  0.725 is "+1557%") and undefined at 0 (a duplicate rate from 0 to 100%).
* ``ratio``: unbounded metrics (Vendi score, compression ratio, lengths, embedding distances)
  change by the factor ``candidate / baseline``, written ``×0.57`` or ``×8.3``.

Written in words, the orientation is the metric's own (a value that rose is written with ``+`` or a
factor above 1: the terminal, the JSON's ``change``, the report); whether that is *less diverse* is
said separately (the metric's direction).  Stored and exported, the same change is signed so that
negative = less diverse (``vocabulary.CHANGE_UNIT``: ``comparisons.change``, ``/metrics``, the
dashboards, the JSON's ``diversity_change``).  Intervals are clipped to what the metric's
range allows.  Pure; no I/O.
"""

from __future__ import annotations

import math
from typing import Literal

Scale = Literal["difference", "ratio"]

UNIT = (0.0, 1.0)
#: The range of every default metric whose range is not ``[0, inf)``.  Metrics not listed here
#: (e.g. one a later family adds) are taken as non-negative and unbounded: compared by ratio.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    **{f"distinct_{n}": UNIT for n in range(1, 5)},
    **{f"ngram_entropy_{n}": UNIT for n in range(1, 5)},
    "self_bleu": UNIT,
    "repetition_rate": UNIT,
    "duplicate_rate": UNIT,
    "ngram_diversity_score": (0.0, 4.0),
    "compression_ratio": (0.0, math.inf),
    "embedding_mean_distance": (0.0, 2.0),
    "embedding_nn_distance": (0.0, 2.0),
    "vendi_score": (1.0, math.inf),
}


def metric_range(metric: str) -> tuple[float, float]:
    """``(low, high)`` a metric's value can take; ``(0, inf)`` for a metric not listed."""
    return METRIC_RANGES.get(metric, (0.0, math.inf))


def scale_of(metric: str) -> Scale:
    """``difference`` for a rate bounded in [0, 1], ``ratio`` otherwise."""
    return "difference" if metric_range(metric) == UNIT else "ratio"


def clip_value_interval(metric: str, low: float, high: float) -> tuple[float, float]:
    """A value's interval clipped to the metric's range (NaN stays NaN)."""
    lo, hi = metric_range(metric)
    return _clip(low, lo, hi), _clip(high, lo, hi)


def _clip(x: float, lo: float, hi: float) -> float:
    return x if math.isnan(x) else min(max(x, lo), hi)


def change_bounds(metric: str, base: float) -> tuple[float, float]:
    """The most a change from ``base`` can be on the metric's scale (difference, or ratio − 1)."""
    lo, hi = metric_range(metric)
    if scale_of(metric) == "difference":
        return lo - base, hi - base
    if not math.isfinite(base) or base <= 0:
        return -math.inf, math.inf
    return lo / base - 1, hi / base - 1


def clip_change_interval(metric: str, base: float, low: float, high: float) -> tuple[float, float]:
    """A change's interval clipped to the changes the metric's range allows from ``base``."""
    lo, hi = change_bounds(metric, base)
    return _clip(low, lo, hi), _clip(high, lo, hi)


def change(metric: str, base: float, cand: float) -> float:
    """The change on the metric's scale: ``cand − base`` (difference) or ``cand / base − 1`` (ratio);
    NaN when undefined (a ratio from a baseline of 0)."""
    if not (math.isfinite(base) and math.isfinite(cand)):
        return math.nan
    if scale_of(metric) == "difference":
        return cand - base
    return cand / base - 1 if base != 0 else math.nan


def _minus(text: str) -> str:
    return text.replace("-", "−")


def format_change(metric: str, value: float, *, digits: int = 1) -> str:
    """One change in words: ``+68.2 pp`` (difference) or ``×8.3`` (ratio; ``value`` is ratio − 1).

    ``digits`` is the precision of percentage points; factors get 2 significant decimals below 10.
    """
    if value is None or math.isnan(value):
        return "–"
    if scale_of(metric) == "difference":
        return _minus(f"{value * 100:+.{digits}f} pp")
    factor = 1 + value
    if factor >= 10:
        return f"×{factor:.0f}"
    return f"×{factor:.2f}" if digits > 0 else f"×{factor:.1f}"


def format_interval(metric: str, low: float, high: float, *, digits: int = 1) -> str:
    """``[+60.1, +75.0] pp`` or ``[×0.51, ×0.63]``."""
    if math.isnan(low) or math.isnan(high):
        return "–"
    if scale_of(metric) == "difference":
        return _minus(f"[{low * 100:+.{digits}f}, {high * 100:+.{digits}f}] pp")
    return f"[{format_change(metric, low, digits=digits)}, {format_change(metric, high, digits=digits)}]"


def clip_relative_interval(metric: str, base: float, low: float, high: float) -> tuple[float, float]:
    """A relative change's interval (``cand / base − 1``) clipped to what the range allows."""
    lo, hi = metric_range(metric)
    if not math.isfinite(base) or base <= 0:
        return low, high
    return _clip(low, lo / base - 1, hi / base - 1), _clip(high, lo / base - 1, hi / base - 1)
