"""The rules that only ever raise a decided status: pooled homogenisation with tail loss, and
collapsed prompts.  Neither applies to an ``inconclusive`` or mostly blank candidate.  Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collector.trends.compare import Comparison
from collector.trends.evidence import pooled_and_tail_evidence
from collector.trends.prompts import PromptEvidence
from collector.trends.rules.status import Decision
from collector.trends.rules.tally import Tally
from collector.trends.thresholds import Thresholds


def applies(d: Decision, t: Tally) -> bool:
    """Whether a raising rule may look at this decision (the status was decided on real outputs)."""
    return d.status != "inconclusive" and not t.blank


def pooled_and_tail(
    d: Decision, t: Tally, th: Thresholds, pooled: Mapping[str, Comparison] | None
) -> tuple[Decision, dict[str, Any]]:
    """The pooled+tail rule (#17, :mod:`collector.trends.evidence`): its reasons come first; and its
    details (empty when it does not apply)."""
    if not applies(d, t):
        return d, {}
    ev = pooled_and_tail_evidence(
        d.status,
        pooled or {},
        t.families,
        lexical_fraction=th.lexical_fraction,
        watch_p_value=th.watch_p_value,
    )
    return Decision(ev.status, (*ev.reasons, *d.reasons)), ev.details  # type: ignore[arg-type]


def collapsed_prompts(d: Decision, t: Tally, th: Thresholds, prompts: PromptEvidence | None) -> Decision:
    """At least ``min_collapsed_prompts`` collapsed prompts make an ``ok`` a ``watch`` (that reason
    first); any collapsed prompt is named, the worst first."""
    if prompts is None or not applies(d, t):
        return d
    line = prompts.summary(th.baseline_label)
    if d.status == "ok" and th.min_collapsed_prompts > 0 and prompts.reached:
        return Decision("watch", (f"{line} (watch needs {prompts.need})", *d.reasons))
    return d.then(line) if prompts.collapsed else d
