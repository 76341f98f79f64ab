"""Comparisons between versions, trend tests and verdicts: pure functions over numbers, no I/O."""

from collector.trends.compare import (
    DEFAULT_MIN_EFFECT,
    Comparison,
    compare,
    compare_paired_replicates,
    paired_arrays,
    sign_flip_p_value,
)
from collector.trends.trend import DEFAULT_LAST_K, MannKendall, Trend, mann_kendall, trend
from collector.trends.verdict import Status, Thresholds, Verdict, describe, verdict

__all__ = [
    "DEFAULT_LAST_K",
    "DEFAULT_MIN_EFFECT",
    "Comparison",
    "MannKendall",
    "Status",
    "Thresholds",
    "Trend",
    "Verdict",
    "compare",
    "compare_paired_replicates",
    "describe",
    "mann_kendall",
    "paired_arrays",
    "sign_flip_p_value",
    "trend",
    "verdict",
]
