"""The verdict of one candidate version: ``ok``, ``watch``, ``collapse_suspected`` or ``inconclusive``.

Collapse narrows *both* the words a model uses and what it says, so the alarm needs agreement
between the lexical and the embedding families.  Length-family metrics are reported but never
count as evidence: shorter outputs alone change lexical scores (distinct-n rises) without any loss
of diversity.  With one evidence family only (``--no-embeddings``) that family must decline with
``p < watch_p_value`` for ``collapse_suspected``.  The gate fails closed: a mostly blank candidate is
never ``ok``, and data too small for the test to reach significance is ``inconclusive``, never
``ok``.  Pure; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from collector.trends.change import format_change, format_interval
from collector.trends.compare import Comparison, min_pairs_for
from collector.trends.evidence import raise_on_pooled_and_tail
from collector.trends.prompts import PromptEvidence
from collector.trends.trend import Trend
from collector.vocabulary import LONE_WATCH_METRICS, Status

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
        LONE_WATCH_METRICS,
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
    blank_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A candidate with at least this share of blank (empty or whitespace) outputs is never "
        "ok: collapse_suspected when the baseline has fewer, inconclusive when it is as blank.",
    )
    baseline_label: str = Field("baseline", description="How reasons name the baseline version, e.g. 'v1'.")
    prompt_fdr: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="False-discovery rate of the per-prompt tests (Benjamini-Hochberg across prompts, "
        "per headline metric).",
    )
    min_collapsed_prompts: int = Field(
        2,
        ge=0,
        description="Collapsed prompts that give at least watch even when the mean has not moved; 0 turns "
        "the per-prompt rule off (the findings are still reported).",
    )
    min_collapsed_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of the compared prompts that must also have collapsed for the per-prompt rule "
        "(0: the count alone decides).",
    )
    prompt_min_decline: dict[str, float] = Field(
        default_factory=lambda: {"distinct_2": 0.10, "vendi_score": 0.20},
        description="Per headline metric, the least decline on one prompt that counts (a difference for "
        "rates: 0.10 = 10 pp; 1 − ratio otherwise: 0.20 = ×0.80).  Calibrated on real same-model "
        "splits (docs/metrics.md): healthy per-prompt distinct-2 moves by a few points.",
    )


@dataclass(frozen=True)
class Coverage:
    """What the two sides had to compare: shared and dropped prompts, outputs per prompt, blanks."""

    n_shared_prompts: int
    only_baseline: int = 0
    only_candidate: int = 0
    min_samples_per_prompt: int = 0  # fewest outputs of a shared prompt on either side
    n_baseline: int = 0
    n_baseline_blank: int = 0
    n_candidate: int = 0
    n_candidate_blank: int = 0

    @property
    def candidate_blank_share(self) -> float:
        return self.n_candidate_blank / self.n_candidate if self.n_candidate else 0.0

    @property
    def baseline_blank_share(self) -> float:
        return self.n_baseline_blank / self.n_baseline if self.n_baseline else 0.0


@dataclass(frozen=True)
class Verdict:
    """``status``, ``reasons`` in words (worst first), and ``details`` for machines."""

    status: Status
    reasons: list[str]
    details: dict[str, Any] = field(default_factory=dict)


def describe(metric: str, c: Comparison, baseline_label: str = "baseline") -> str:
    """One readable line in the metric's own direction and scale, e.g. ``distinct_2 −6.1 pp vs v1
    [−7.0, −5.2] pp`` or ``vendi_score ×0.57 vs v1 [×0.51, ×0.63]``."""
    text = f"{metric} {format_change(metric, c.change)} vs {baseline_label} "
    text += format_interval(metric, c.change_ci_low, c.change_ci_high)
    if not c.higher_is_diverse:
        text += " (lower is more diverse)"
    return text


def _counts(hits: Mapping[str, list[str]], totals: Mapping[str, int]) -> str:
    """``5 of 7 lexical and 2 of 3 embedding metrics`` (families with no metric left out)."""
    present = [f for f in EVIDENCE_FAMILIES if totals.get(f)] or list(EVIDENCE_FAMILIES)
    return " and ".join(f"{len(hits[f])} of {totals[f]} {f}" for f in present) + " metrics"


def _declined_by_family(
    comparisons: Mapping[str, Comparison], families: Mapping[str, str]
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """(metrics with a significant decline, number of scorable metrics), per evidence family."""
    declined: dict[str, list[str]] = {f: [] for f in EVIDENCE_FAMILIES}
    totals = {f: 0 for f in EVIDENCE_FAMILIES}
    for m, c in comparisons.items():
        fam = families.get(m)
        if fam not in totals or not c.scorable:  # NaN: unscorable, not evidence
            continue
        totals[fam] += 1
        if c.significant_decline:
            declined[fam].append(m)
    return declined, totals


def _severity(c: Comparison) -> float:
    """The change oriented so that more negative is less diverse, on the metric's scale."""
    return c.change if c.higher_is_diverse else -c.change


def insufficient_data(
    comparisons: Mapping[str, Comparison],
    families: Mapping[str, str],
    coverage: Coverage | None,
    *,
    has_trends: bool = False,
) -> str | None:
    """Why the data cannot support a decision, or None when it can.

    The data cannot when an evidence family that was compared has no metric whose test could reach
    significance: too few shared prompts for the sign-flip test (``min_pairs_for(alpha)``, 6 at
    0.05), or too few outputs per prompt for the within-prompt metrics (they need two).
    """
    present = {families.get(m) for m in comparisons} & set(EVIDENCE_FAMILIES)
    if not present:  # a verdict on trends alone (no comparison given) is still a decision
        return None if has_trends else "no lexical or embedding metric was compared"
    usable = {
        f: [m for m, c in comparisons.items() if families.get(m) == f and c.can_reach_significance]
        for f in present
    }
    lacking = sorted(f for f in present if not usable[f])
    if not lacking:
        return None
    alpha = next(iter(comparisons.values())).alpha
    need = min_pairs_for(alpha)
    n = coverage.n_shared_prompts if coverage else max((c.n_pairs for c in comparisons.values()), default=0)
    if n < need:
        return (
            f"only {n} shared prompt{'s' if n != 1 else ''}: the paired test needs at least {need} to reach "
            f"p < {alpha:g}, so no decline, however large, could have been detected"
        )
    if coverage is not None and coverage.min_samples_per_prompt < 2:
        return (
            f"only {coverage.min_samples_per_prompt} output(s) for some shared prompts: the within-prompt "
            f"metrics need at least 2 per prompt (and {need} shared prompts with them), so the "
            f"{' and '.join(lacking)} metrics could not be scored"
        )
    return f"the {' and '.join(lacking)} metrics could not be scored on both sides ({n} shared prompts)"


def detectable_text(comparisons: Mapping[str, Comparison], metrics: tuple[str, ...], n: int) -> str | None:
    """``smallest decline 24 shared prompts could detect: distinct_2 −3.1 pp, vendi_score ×0.93``."""
    parts = []
    for m in metrics:
        c = comparisons.get(m)
        if c is None or not c.scorable or c.min_detectable == float("inf"):
            continue
        sign = -1 if c.higher_is_diverse else 1
        parts.append(f"{m} {format_change(m, sign * c.min_detectable)}")
    if not parts:
        return None
    return f"smallest decline {n} shared prompts could detect (80% power): " + ", ".join(parts)


def verdict(
    comparisons: Mapping[str, Comparison],
    trends: Mapping[str, Trend],
    families: Mapping[str, str],
    thresholds: Thresholds | None = None,
    pooled: Mapping[str, Comparison] | None = None,
    coverage: Coverage | None = None,
    prompts: PromptEvidence | None = None,
) -> Verdict:
    """Combine per-metric comparisons (candidate vs baseline) and trends into one verdict.

    ``comparisons`` are the ``within`` scope's and decide the status.  ``pooled`` (the ``across``
    scope's, optional) never changes the status; when any of them declined, one reason line says
    how many, so homogenisation across prompts is named even when the status stays ``ok``/``watch``.
    ``coverage`` (optional) says what was compared: dropped prompts are named, blanks counted.

    In order:

    * ``collapse_suspected`` when at least ``blank_fraction`` of the candidate's outputs are blank
      and fewer of the baseline's; ``inconclusive`` when both are that blank.
    * ``inconclusive`` when the data cannot support a decision (:func:`insufficient_data`).
    * ``collapse_suspected``: at least ``lexical_fraction`` of the lexical metrics AND at least
      ``embedding_fraction`` of the embedding metrics declined significantly vs the baseline.  With
      one evidence family only (the other not compared), that family must reach its fraction with
      declines of ``p < watch_p_value``.
    * ``watch``: a headline metric declined with ``p < watch_p_value``; or one family reached its
      fraction with declines of ``p < watch_p_value``; or
      significant downward trends in at least ``trend_fraction`` of both families.
    * ``ok`` otherwise.  Metrics of any other family (``length``) never count.

    ``prompts`` (optional, :mod:`collector.trends.prompts`): when at least ``min_collapsed_prompts``
    prompts individually collapsed, an ``ok`` becomes ``watch`` (the mean need not have moved); any
    collapsed prompt is named in the reasons, the worst first.
    """
    th = thresholds or Thresholds()
    fractions = {"lexical": th.lexical_fraction, "embedding": th.embedding_fraction}
    declined, totals = _declined_by_family(comparisons, families)
    present = tuple(f for f in EVIDENCE_FAMILIES if any(families.get(m) == f for m in comparisons))
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
    single = len(present) == 1
    n_shared = (
        coverage.n_shared_prompts if coverage else max((c.n_pairs for c in comparisons.values()), default=0)
    )
    alpha = next(iter(comparisons.values())).alpha if comparisons else 0.05

    def need(f: str) -> int:
        return max(1, math.ceil(fractions[f] * totals[f]))

    summary = _counts(declined, totals) + " declined"
    reasons: list[str] = []
    status: Status
    blank = coverage is not None and coverage.candidate_blank_share >= th.blank_fraction
    lacking = insufficient_data(comparisons, families, coverage, has_trends=any(trend_totals.values()))
    if blank:
        assert coverage is not None
        what = f"{coverage.n_candidate_blank} of {coverage.n_candidate} candidate outputs are blank"
        base = f"baseline: {coverage.n_baseline_blank} of {coverage.n_baseline}"
        if coverage.baseline_blank_share >= th.blank_fraction:
            status = "inconclusive"
            reasons.append(f"{what} ({base}): both sides are mostly blank, nothing to judge")
        else:
            status = "collapse_suspected"
            reasons.append(f"{what} ({base})")
    elif lacking is not None:
        status = "inconclusive"
        reasons.append(f"inconclusive: {lacking}")
    elif single and fam_strong[present[0]]:
        status = "collapse_suspected"
        f = present[0]
        reasons.append(
            f"{summary}, {len(strong[f])} with p < {th.watch_p_value:g} "
            f"({f}-only verdict: no {'embedding' if f == 'lexical' else 'lexical'} metrics were compared)"
        )
    elif not single and all(fam_hit[f] for f in EVIDENCE_FAMILIES):
        status = "collapse_suspected"
        reasons.append(summary)
    elif any(fam_strong.values()) or headline_hit or all(trend_hit.values()):
        status = "watch"
        if any(fam_strong.values()):
            only = next(f for f in EVIDENCE_FAMILIES if fam_strong[f])
            reasons.append(f"{summary} (only the {only} family agrees)")
        elif headline_hit:
            reasons.append(
                f"headline metric{'s' if len(headline_hit) > 1 else ''} declined with p < "
                f"{th.watch_p_value:g}: {', '.join(headline_hit)}"
            )
        if all(trend_hit.values()):
            reasons.append("downward trend in both families: " + _counts(trending, trend_totals))
    else:
        status = "ok"
        if any(declined.values()):
            rules = " and ".join(f"{need(f)} {f}" for f in present)
            if single:  # one family alone must reach its fraction at the stricter p (see above)
                rule = (
                    f"collapse_suspected needs {rules} at p < {th.watch_p_value:g} ({present[0]}-only "
                    f"verdict); watch needs a headline metric at p < {th.watch_p_value:g}"
                )
            else:
                rule = (
                    f"collapse_suspected needs {rules} at p < {alpha:g}; watch needs a headline "
                    f"metric or a family at p < {th.watch_p_value:g}"
                )
            reasons.append(f"{summary} at p < {alpha:g}, short of every rule ({rule})")
        else:
            reasons.append(f"no metric declined significantly ({_counts(declined, totals)})")
        smallest = detectable_text(comparisons, th.headline_metrics, n_shared)
        if smallest:
            reasons.append(smallest)
    if coverage is not None and (coverage.only_baseline or coverage.only_candidate):
        reasons.append(
            f"compared on the {coverage.n_shared_prompts} shared prompts; left out: "
            f"{coverage.only_baseline} only in {th.baseline_label}, {coverage.only_candidate} only in the candidate"
        )
    evidence: dict[str, Any] = {}
    if status != "inconclusive" and not blank:  # the pooled+tail rule (#17) only ever raises a status
        status, reasons, evidence = raise_on_pooled_and_tail(status, reasons, pooled or {}, families, th)  # type: ignore[assignment]
    if prompts is not None and status not in ("inconclusive",) and not blank:
        line = prompts.summary(th.baseline_label)
        if status == "ok" and th.min_collapsed_prompts > 0 and prompts.reached:
            status = "watch"
            reasons = [f"{line} (watch needs {prompts.need})", *reasons]
        elif prompts.collapsed:
            reasons.append(line)
    if prompts is not None and not blank:
        reasons.extend(prompts.notes)  # e.g. the test was skipped: too few outputs per prompt
    pooled_declined, pooled_totals = _declined_by_family(pooled or {}, families)
    if any(pooled_declined.values()):
        reasons.append("pooled (across prompts): " + _counts(pooled_declined, pooled_totals) + " declined")
    # Per-metric lines for every evidence metric that declined, worst first.
    worst = sorted(
        (m for f in EVIDENCE_FAMILIES for m in declined[f]), key=lambda m: _severity(comparisons[m])
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
        "families_compared": list(present),
        "inconclusive": lacking,
        "min_pairs": min_pairs_for(alpha),
        "min_detectable": {
            m: c.min_detectable
            for m, c in comparisons.items()
            if families.get(m) in EVIDENCE_FAMILIES and c.min_detectable != float("inf")
        },
    }
    if coverage is not None:
        details["coverage"] = asdict(coverage)
    if prompts is not None:
        details["prompts"] = {
            **prompts.as_dict(all_findings=False, text_limit=200),
            "rule_on": th.min_collapsed_prompts > 0,
        }
    return Verdict(status=status, reasons=reasons, details=details)
