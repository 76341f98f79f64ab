"""The counts every verdict rule reads: what declined or trended down, per evidence family.

Counted once (:func:`tally`) so that the rules (:mod:`collector.trends.rules.status` and the rest)
each read the same numbers and stay small.  Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from collector.trends.compare import Comparison
from collector.trends.rules.sufficiency import alpha_of, insufficient_data, shared_prompts
from collector.trends.thresholds import EVIDENCE_FAMILIES, Coverage, Thresholds
from collector.trends.trend import Trend

MIN_TREND_VERSIONS = 3  # fewer versions give no trend test
T = TypeVar("T")


@dataclass(frozen=True)
class Tally:
    """What the comparisons and trends add up to, per evidence family (``lexical``, ``embedding``)."""

    comparisons: Mapping[str, Comparison]
    families: Mapping[str, str]
    coverage: Coverage | None
    declined: dict[str, list[str]]  # significant declines
    totals: dict[str, int]  # scorable metrics
    strong: dict[str, list[str]]  # declines that also have p < watch_p_value
    trending: dict[str, list[str]]  # significant downward trends
    trend_totals: dict[str, int]  # metrics with a trend test
    family_reached: dict[str, bool]
    family_reached_strongly: dict[str, bool]
    trend_family_reached: dict[str, bool]
    headline_declined: list[str]  # headline metrics declined with p < watch_p_value
    present: tuple[str, ...]  # evidence families compared
    n_shared: int
    alpha: float
    lacking: str | None  # why the data cannot support a decision (None: it can)
    blank: bool  # the candidate is mostly blank
    pooled_declined: dict[str, list[str]]  # the same counts in the pooled (``across``) scope
    pooled_totals: dict[str, int]

    @property
    def single(self) -> bool:
        """One evidence family only was compared (e.g. ``--no-embeddings``)."""
        return len(self.present) == 1

    @property
    def summary(self) -> str:
        """``5 of 7 lexical and 2 of 3 embedding metrics declined``."""
        return counts_text(self.declined, self.totals) + " declined"


def counts_text(hits: Mapping[str, list[str]], totals: Mapping[str, int]) -> str:
    """``5 of 7 lexical and 2 of 3 embedding metrics`` (families with no metric left out)."""
    present = [f for f in EVIDENCE_FAMILIES if totals.get(f)] or list(EVIDENCE_FAMILIES)
    return " and ".join(f"{len(hits[f])} of {totals[f]} {f}" for f in present) + " metrics"


def family_fractions(th: Thresholds) -> dict[str, float]:
    """The share of each evidence family's metrics that must decline."""
    return {"lexical": th.lexical_fraction, "embedding": th.embedding_fraction}


def by_family(
    items: Mapping[str, T], families: Mapping[str, str], counts: Callable[[T], bool], hit: Callable[[T], bool]
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """(metrics that ``hit``, number of metrics that ``counts``), per evidence family."""
    hits: dict[str, list[str]] = {f: [] for f in EVIDENCE_FAMILIES}
    totals = dict.fromkeys(EVIDENCE_FAMILIES, 0)
    for m, item in items.items():
        fam = families.get(m)
        if fam not in totals or not counts(item):
            continue
        totals[fam] += 1
        if hit(item):
            hits[fam].append(m)
    return hits, totals


def declined_by_family(
    comparisons: Mapping[str, Comparison], families: Mapping[str, str]
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """(metrics with a significant decline, number of scorable metrics), per evidence family.
    An unscorable comparison (NaN) is no evidence."""
    return by_family(comparisons, families, lambda c: c.scorable, lambda c: c.significant_decline)


def trending_by_family(
    trends: Mapping[str, Trend], families: Mapping[str, str]
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """(metrics with a significant downward trend, number of metrics with a trend test), per family."""
    return by_family(
        trends, families, lambda t: t.n_versions >= MIN_TREND_VERSIONS, lambda t: t.significant_decline
    )


def reached(
    counts: Mapping[str, list[str]], totals: Mapping[str, int], fractions: Mapping[str, float]
) -> dict[str, bool]:
    """Per family: at least one hit, and hits in at least its fraction of the family's metrics."""
    return {
        f: totals[f] > 0 and len(counts[f]) > 0 and len(counts[f]) >= fractions[f] * totals[f] for f in totals
    }


def severity(c: Comparison) -> float:
    """The change oriented so that more negative is less diverse, on the metric's scale."""
    return c.change if c.higher_is_diverse else -c.change


def tally(
    comparisons: Mapping[str, Comparison],
    trends: Mapping[str, Trend],
    families: Mapping[str, str],
    th: Thresholds,
    *,
    pooled: Mapping[str, Comparison] | None = None,
    coverage: Coverage | None = None,
) -> Tally:
    """Count the declines and trends the rules read."""
    fractions = family_fractions(th)
    declined, totals = declined_by_family(comparisons, families)
    strong = {
        f: [m for m in declined[f] if comparisons[m].p_value < th.watch_p_value] for f in EVIDENCE_FAMILIES
    }
    trending, trend_totals = trending_by_family(trends, families)
    pooled_declined, pooled_totals = declined_by_family(pooled or {}, families)
    return Tally(
        comparisons=comparisons,
        families=families,
        coverage=coverage,
        declined=declined,
        totals=totals,
        strong=strong,
        trending=trending,
        trend_totals=trend_totals,
        family_reached=reached(declined, totals, fractions),
        family_reached_strongly=reached(strong, totals, fractions),
        trend_family_reached=reached(
            trending, trend_totals, dict.fromkeys(EVIDENCE_FAMILIES, th.trend_fraction)
        ),
        headline_declined=[
            m
            for m in th.headline_metrics
            if m in comparisons
            and comparisons[m].significant_decline
            and comparisons[m].p_value < th.watch_p_value
        ],
        present=tuple(f for f in EVIDENCE_FAMILIES if any(families.get(m) == f for m in comparisons)),
        n_shared=shared_prompts(comparisons, coverage),
        alpha=alpha_of(comparisons),
        lacking=insufficient_data(comparisons, families, coverage, has_trends=any(trend_totals.values())),
        blank=coverage is not None and coverage.candidate_blank_share >= th.blank_fraction,
        pooled_declined=pooled_declined,
        pooled_totals=pooled_totals,
    )
