"""Reason lines that never change the status: prompts left out, per-prompt notes, pooled declines,
and one line per declined metric.  Pure; no I/O.
"""

from __future__ import annotations

from collector.trends.change import format_change, format_interval
from collector.trends.compare import Comparison
from collector.trends.prompts import PromptEvidence
from collector.trends.rules.tally import Tally, counts_text, severity
from collector.trends.thresholds import EVIDENCE_FAMILIES, Thresholds


def describe(metric: str, c: Comparison, baseline_label: str = "baseline") -> str:
    """One readable line in the metric's own direction and scale, e.g. ``distinct_2 −6.1 pp vs v1
    [−7.0, −5.2] pp`` or ``vendi_score ×0.57 vs v1 [×0.51, ×0.63]``."""
    text = f"{metric} {format_change(metric, c.change)} vs {baseline_label} "
    text += format_interval(metric, c.change_ci_low, c.change_ci_high)
    if not c.higher_is_diverse:
        text += " (lower is more diverse)"
    return text


def dropped_prompts(t: Tally, th: Thresholds) -> str | None:
    """The prompts only one side had (the comparison is on the shared ones)."""
    cov = t.coverage
    if cov is None or not (cov.only_baseline or cov.only_candidate):
        return None
    return (
        f"compared on the {cov.n_shared_prompts} shared prompts; left out: "
        f"{cov.only_baseline} only in {th.baseline_label}, {cov.only_candidate} only in the candidate"
    )


def prompt_notes(t: Tally, prompts: PromptEvidence | None) -> tuple[str, ...]:
    """What the per-prompt test could not do, e.g. skipped: too few outputs per prompt."""
    return () if prompts is None or t.blank else tuple(prompts.notes)


def pooled_declines(t: Tally) -> str | None:
    """How many metrics declined in the pooled (``across``) scope: named even when the status stays."""
    if not any(t.pooled_declined.values()):
        return None
    return "pooled (across prompts): " + counts_text(t.pooled_declined, t.pooled_totals) + " declined"


def metric_declines(t: Tally, th: Thresholds) -> tuple[str, ...]:
    """One line for every evidence metric that declined, the worst first."""
    worst = sorted(
        (m for f in EVIDENCE_FAMILIES for m in t.declined[f]), key=lambda m: severity(t.comparisons[m])
    )
    return tuple(describe(m, t.comparisons[m], th.baseline_label) for m in worst)
