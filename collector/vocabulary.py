"""The house's shared words: one definition of each concept every layer names.

The floor under everything: it imports nothing of the collector and nothing outside the standard
library, so the store, trends, the ``/metrics`` readout, the report, render, the Grafana generator
and the CLI all import it instead of keeping their own copy (a copy is how they came to disagree:
the verdict, the terminal table and the dashboards each had a different headline set).
``tests/test_vocabulary.py`` fails when a second definition appears.

Where a new concept goes (docs/architecture.md): if two layers must agree on it — a status, a set
of metric names, a rule that decides which rows count — it is defined here, once; if only one layer
uses it, it stays in that layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

# --- verdicts -------------------------------------------------------------------------------------

Status = Literal["ok", "watch", "collapse_suspected", "inconclusive"]
STATUSES: tuple[Status, ...] = ("ok", "watch", "collapse_suspected", "inconclusive")
# How bad a decided status is; ``inconclusive`` is no decision and has no rank.
STATUS_RANK: dict[str, int] = {"ok": 0, "watch": 1, "collapse_suspected": 2}
# A gate's exit status per verdict (1 is collapse: what `set -e` and CI treat as failure).
EXIT_CODES: dict[str, int] = {"ok": 0, "collapse_suspected": 1, "watch": 3, "inconclusive": 4}
EXIT_USAGE = 2  # a bad argument, config or input: nothing was judged
EXIT_SOFTWARE = 70  # EX_SOFTWARE: an unexpected internal error, never read as a verdict
EXIT_IOERR = 74  # EX_IOERR: standard output closed or gone (a pipe's reader left) before all was written

# --- metrics people read first --------------------------------------------------------------------

# The headline set: what the terminal's fleet table, the report, the dashboards' per-metric panels and
# the ``summary`` detail of /metrics show, and what the per-prompt view reads.  Lexical rate, lexical
# overlap, lexical redundancy, and two embedding summaries.
HEADLINE_METRICS: tuple[str, ...] = (
    "distinct_2",
    "self_bleu",
    "embedding_mean_distance",
    "vendi_score",
    "compression_ratio",
)
# The verdict's default for ``Thresholds.headline_metrics``: the headline metrics whose decline alone
# gives ``watch`` (one lexical, one embedding; each more adds ~2.5% false alarms).  A subset of
# HEADLINE_METRICS by definition.
LONE_WATCH_METRICS: tuple[str, ...] = ("distinct_2", "vendi_score")

# --- runs -----------------------------------------------------------------------------------------

RunStatus = Literal["running", "succeeded", "partial", "failed", "interrupted", "no_data"]
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "succeeded", "partial", "failed", "interrupted", "no_data")
# A completed run: one whose values count (baselines, comparisons, trends, the exported values).
COMPLETED_RUN_STATUSES: tuple[RunStatus, ...] = ("succeeded", "partial")
FAILED_RUN_STATUSES: tuple[RunStatus, ...] = ("failed", "interrupted")
# A run that has ended, whatever its outcome: the statuses ``finish_run`` accepts.
FINAL_RUN_STATUSES: tuple[RunStatus, ...] = tuple(s for s in RUN_STATUSES if s != "running")
# A run that ran to its own end (not cut short, not idle): its duration and blank ratio count.
TIMED_RUN_STATUSES: tuple[RunStatus, ...] = (*COMPLETED_RUN_STATUSES, "failed")


def is_completed(status: str | None) -> bool:
    """Whether a run with this status is a completed run (its values count)."""
    return status in COMPLETED_RUN_STATUSES


# --- comparisons ----------------------------------------------------------------------------------

Reference = Literal["baseline", "previous"]
REFERENCES: tuple[Reference, ...] = ("baseline", "previous")
Scope = Literal["within", "across"]
SCOPES: tuple[Scope, ...] = ("within", "across")

# The baseline rule: a model's baseline is the version pinned as its baseline
# (``models.baseline_version_id``), else its first version (lowest ordinal).
BASELINE_RULE = "the pinned baseline version, else the model's first version"

# The one change format, everywhere (CLI tables and JSON, /metrics, the report, the dashboards):
# the change on the metric's own scale (collector.trends.change.scale_of): for a rate bounded in
# [0, 1] the difference ``candidate - baseline`` (0.05 = 5 percentage points); for any other metric
# the relative change ``candidate / baseline - 1``; signed so that a negative number means LESS
# diverse.
CHANGE_UNIT = (
    "change on the metric's scale, signed so that negative = less diverse: for rates bounded in [0, 1] "
    "the difference of the rates (0.05 = 5 percentage points), for other metrics the relative change "
    "(candidate / baseline - 1); the sign is flipped for metrics where lower is more diverse (self_bleu)"
)


def diversity_oriented(
    value: float, low: float, high: float, higher_is_diverse: bool
) -> tuple[float, float, float]:
    """A change and its interval in diversity orientation (negative = less diverse), from the
    metric's own direction; applied twice it gives the metric's own direction back."""
    return (value, low, high) if higher_is_diverse else (-value, -high, -low)


@dataclass(frozen=True)
class ChangeRow:
    """The stored change of one metric x scope of a candidate run vs a reference run: what the
    assessment writes, and what the store reads back for ``/metrics``, the fleet table, the history
    and the report (one type on the way in and out; NaN is stored as NULL).

    ``change``/``ci_low``/``ci_high`` are on the ``CHANGE_UNIT`` scale, diversity-oriented
    (negative = less diverse); ``significant_decline`` is the verdict's own decision.  The relative
    change ``candidate / baseline - 1`` is kept beside it (``relative*``, diversity-oriented too),
    because the store still writes it (``comparisons.rel_change``: in the metric's own direction,
    which ``higher_is_diverse`` gives back).
    """

    model: str
    version: str  # the candidate's version label
    metric: str
    scope: str  # a Scope
    reference: str  # a Reference
    change: float
    ci_low: float
    ci_high: float
    p_value: float
    significant_decline: bool = False
    n_pairs: int = 0  # prompts paired
    reference_run_id: int | None = None  # required when writing
    relative: float = math.nan
    relative_ci_low: float = math.nan
    relative_ci_high: float = math.nan
    higher_is_diverse: bool = True


@dataclass(frozen=True)
class TrendRow:
    """The stored trend of one metric x scope over a model's last versions: Theil-Sen ``slope`` per
    version step (relative, diversity-oriented: negative = less diverse) with its interval, the
    Mann-Kendall ``p_value``, the versions it was fitted on and the newest of them.  What the
    assessment writes and the store reads back (``/metrics``, the history table)."""

    model: str
    metric: str
    scope: str  # a Scope
    slope: float
    p_value: float
    n_versions: int
    slope_ci_low: float = math.nan
    slope_ci_high: float = math.nan
    last_version: str | None = None  # label of the newest version in the window


# --- where the database is ------------------------------------------------------------------------

DATABASE_URL_ENV = "COLLAPSE_WATCH_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///collapse-watch.db"
