"""A verdict's ``details``: the counts behind its reasons, for machines (the JSON of ``compare``,
the stored verdict).  Pure; no I/O.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from collector.trends.compare import min_pairs_for
from collector.trends.prompts import PromptEvidence
from collector.trends.rules.tally import Tally
from collector.trends.thresholds import EVIDENCE_FAMILIES, Thresholds

PROMPT_TEXT_LIMIT = 200  # characters of a collapsed prompt's text kept in the details


def details(
    t: Tally, th: Thresholds, pooled_and_tail: dict[str, Any], prompts: PromptEvidence | None
) -> dict[str, Any]:
    """The details of a verdict (keys in a fixed order; ``coverage`` and ``prompts`` when given)."""
    out: dict[str, Any] = {
        "declined": t.declined,
        "trending_down": t.trending,
        "n_metrics": t.totals,
        "n_trends": t.trend_totals,
        "family_reached": t.family_reached,
        "family_reached_strongly": t.family_reached_strongly,
        "trend_family_reached": t.trend_family_reached,
        "headline_declined": t.headline_declined,
        "ignored": sorted(m for m in t.comparisons if t.families.get(m) not in t.totals),
        "declined_across": t.pooled_declined,
        "pooled_and_tail": pooled_and_tail,
        "families_compared": list(t.present),
        "inconclusive": t.lacking,
        "min_pairs": min_pairs_for(t.alpha),
        "min_detectable": {
            m: c.min_detectable
            for m, c in t.comparisons.items()
            if t.families.get(m) in EVIDENCE_FAMILIES and c.min_detectable != float("inf")
        },
    }
    if t.coverage is not None:
        out["coverage"] = asdict(t.coverage)
    if prompts is not None:
        out["prompts"] = {
            **prompts.as_dict(all_findings=False, text_limit=PROMPT_TEXT_LIMIT),
            "rule_on": th.min_collapsed_prompts > 0,
        }
    return out
