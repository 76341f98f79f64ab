"""Comparisons between versions, trend tests and verdicts: pure functions over numbers, no I/O."""

from collector.trends.change import Scale, format_change, format_interval, scale_of
from collector.trends.compare import (
    DEFAULT_MIN_DIFFERENCE,
    DEFAULT_MIN_EFFECT,
    Comparison,
    compare,
    compare_paired_replicates,
    min_pairs_for,
    paired_arrays,
    sign_flip_p_value,
)
from collector.trends.thresholds import Coverage, Thresholds
from collector.trends.trend import DEFAULT_LAST_K, MannKendall, Trend, mann_kendall, trend
from collector.trends.verdict import Verdict, describe, verdict
from collector.vocabulary import STATUSES, Status

__all__ = [
    "DEFAULT_LAST_K",
    "DEFAULT_MIN_DIFFERENCE",
    "DEFAULT_MIN_EFFECT",
    "STATUSES",
    "Comparison",
    "Coverage",
    "MannKendall",
    "Scale",
    "Status",
    "Thresholds",
    "Trend",
    "Verdict",
    "compare",
    "compare_paired_replicates",
    "describe",
    "format_change",
    "format_interval",
    "mann_kendall",
    "min_pairs_for",
    "paired_arrays",
    "scale_of",
    "sign_flip_p_value",
    "trend",
    "verdict",
]
