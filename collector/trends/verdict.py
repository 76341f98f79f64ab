"""The verdict of one candidate version: ``ok``, ``watch`` or ``collapse_suspected``.

Collapse narrows *both* the words a model uses and what it says, so the alarm needs agreement
between the lexical and the embedding families.  Length-family metrics are reported but never
count as evidence: shorter outputs alone change lexical scores (distinct-n rises) without any loss
of diversity.  Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from collector.trends.compare import Comparison
from collector.trends.evidence import raise_on_pooled_and_tail
from collector.trends.trend import Trend

Status = Literal["ok", "watch", "collapse_suspected"]
EVIDENCE_FAMILIES: tuple[str, ...] = ("lexical", "embedding")


class Thresholds(BaseModel):
    """When declines add up to a verdict.  Each metric's own test (alpha, minimum effect) lives in
    :func:`collector.trends.compare`; these thresholds count its ``significant_decline`` flags."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lexical_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of lexical metrics that must decline for collapse_suspected. Half: lexical "
        "metrics are strongly correlated, so a real narrowing moves most of them together.",
    )
    embedding_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of embedding metrics that must decline for collapse_suspected (half of "
        "three is two: semantic narrowing seen by more than one estimator).",
    )
    trend_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of a family's metrics with a significant downward trend that counts as a "
        "family trend; a trend in both families gives watch.",
    )
    headline_metrics: tuple[str, ...] = Field(
        ("distinct_2", "vendi_score"),
        description="Metrics whose decline alone gives watch: one lexical and one embedding summary "
        "that people read first.  Two, not more: each adds up to ~2.5% false alarms.",
    )
    watch_p_value: float = Field(
        0.01,
        gt=0,
        le=1,
        description="For the one-sided watch rules (a headline metric alone, one family alone) a decline "
        "counts only with a p-value below this as well as significance at the comparison's alpha. "
        "watch is the union of several rules; at 0.05 each the null false-alarm rate of the whole "
        "verdict was ~8% (measured), at 0.01 it is under 5%.",
    )
    baseline_label: str = Field("baseline", description="How reasons name the baseline version, e.g. 'v1'.")


@dataclass(frozen=True)
class Verdict:
    """``status``, ``reasons`` in words (worst first), and ``details`` for machines."""

    status: Status
    reasons: list[str]
    details: dict[str, Any] = field(default_factory=dict)


def _pct(x: float) -> str:
    s = f"{x * 100:+.0f}%"
    return s.replace("-", "−")


def describe(metric: str, c: Comparison, baseline_label: str = "baseline") -> str:
    """One readable line, e.g. ``distinct_2 −31% vs v1 [−36%, −26%]``, in the metric's own units."""
    text = f"{metric} {_pct(c.rel_change)} vs {baseline_label} [{_pct(c.ci_low)}, {_pct(c.ci_high)}]"
    if not c.higher_is_diverse:
        text += " (lower is more diverse)"
    return text


def _counts(hits: Mapping[str, list[str]], totals: Mapping[str, int]) -> str:
    """``5 of 7 lexical and 2 of 3 embedding metrics``."""
    return " and ".join(f"{len(hits[f])} of {totals[f]} {f}" for f in EVIDENCE_FAMILIES) + " metrics"


def _declined_by_family(
    comparisons: Mapping[str, Comparison], families: Mapping[str, str]
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """(metrics with a significant decline, number of scorable metrics), per evidence family."""
    declined: dict[str, list[str]] = {f: [] for f in EVIDENCE_FAMILIES}
    totals = {f: 0 for f in EVIDENCE_FAMILIES}
    for m, c in comparisons.items():
        fam = families.get(m)
        if fam not in totals or c.rel_change != c.rel_change:  # NaN: unscorable, not evidence
            continue
        totals[fam] += 1
        if c.significant_decline:
            declined[fam].append(m)
    return declined, totals


def verdict(
    comparisons: Mapping[str, Comparison],
    trends: Mapping[str, Trend],
    families: Mapping[str, str],
    thresholds: Thresholds | None = None,
    pooled: Mapping[str, Comparison] | None = None,
) -> Verdict:
    """Combine per-metric comparisons (candidate vs baseline) and trends into one verdict.

    ``comparisons`` are the ``within`` scope's and decide the status.  ``pooled`` (the ``across``
    scope's, optional) never changes the status; when any of them declined, one reason line says
    how many, so homogenisation across prompts is named even when the status stays ``ok``/``watch``.

    * ``collapse_suspected``: at least ``lexical_fraction`` of the lexical metrics AND at least
      ``embedding_fraction`` of the embedding metrics declined significantly vs the baseline.
    * ``watch``: a headline metric declined with ``p < watch_p_value``; or one family reached its
      fraction with declines of ``p < watch_p_value``; or
      significant downward trends in at least ``trend_fraction`` of both families.
    * ``ok`` otherwise.  Metrics of any other family (``length``) never count.
    """
    th = thresholds or Thresholds()
    fractions = {"lexical": th.lexical_fraction, "embedding": th.embedding_fraction}
    declined, totals = _declined_by_family(comparisons, families)
    strong = {  # declines that also have p < watch_p_value
        f: [m for m in declined[f] if comparisons[m].p_value < th.watch_p_value] for f in EVIDENCE_FAMILIES
    }
    trending: dict[str, list[str]] = {f: [] for f in EVIDENCE_FAMILIES}
    trend_totals = {f: 0 for f in EVIDENCE_FAMILIES}
    for m, t in trends.items():
        fam = families.get(m)
        if fam not in trend_totals or t.n_versions < 3:
            continue
        trend_totals[fam] += 1
        if t.significant_decline:
            trending[fam].append(m)

    def reached(
        counts: dict[str, list[str]], tot: dict[str, int], frac: Mapping[str, float]
    ) -> dict[str, bool]:
        return {f: tot[f] > 0 and len(counts[f]) > 0 and len(counts[f]) >= frac[f] * tot[f] for f in tot}

    fam_hit = reached(declined, totals, fractions)
    fam_strong = reached(strong, totals, fractions)
    trend_hit = reached(trending, trend_totals, dict.fromkeys(EVIDENCE_FAMILIES, th.trend_fraction))
    headline_hit = [
        m
        for m in th.headline_metrics
        if m in comparisons
        and comparisons[m].significant_decline
        and comparisons[m].p_value < th.watch_p_value
    ]

    summary = _counts(declined, totals) + " declined"
    reasons: list[str] = []
    if all(fam_hit.values()):
        status: Status = "collapse_suspected"
        reasons.append(summary)
    elif any(fam_strong.values()) or headline_hit or all(trend_hit.values()):
        status = "watch"
        if any(fam_strong.values()):
            only = next(f for f in EVIDENCE_FAMILIES if fam_strong[f])
            reasons.append(f"{summary} (only the {only} family agrees)")
        elif headline_hit:
            reasons.append(
                f"headline metric{'s' if len(headline_hit) > 1 else ''} declined: {', '.join(headline_hit)}"
            )
        if all(trend_hit.values()):
            reasons.append("downward trend in both families: " + _counts(trending, trend_totals))
    else:
        status = "ok"
        reasons.append(f"no significant decline ({summary})")
    status, reasons, evidence = raise_on_pooled_and_tail(status, reasons, pooled or {}, families, th)  # type: ignore[assignment]
    pooled_declined, pooled_totals = _declined_by_family(pooled or {}, families)
    if any(pooled_declined.values()):
        reasons.append("pooled (across prompts): " + _counts(pooled_declined, pooled_totals) + " declined")
    # Per-metric lines for every evidence metric that declined, worst (most negative) first.
    worst = sorted(
        (m for f in EVIDENCE_FAMILIES for m in declined[f]), key=lambda m: comparisons[m].diversity_change
    )
    reasons.extend(describe(m, comparisons[m], th.baseline_label) for m in worst)
    details = {
        "declined": declined,
        "trending_down": trending,
        "n_metrics": totals,
        "n_trends": trend_totals,
        "family_reached": fam_hit,
        "family_reached_strongly": fam_strong,
        "trend_family_reached": trend_hit,
        "headline_declined": headline_hit,
        "ignored": sorted(m for m in comparisons if families.get(m) not in totals),
        "declined_across": pooled_declined,
        "pooled_and_tail": evidence,
    }
    return Verdict(status=status, reasons=reasons, details=details)
