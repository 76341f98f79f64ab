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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.trends.compare import Comparison
from collector.trends.prompts import PromptEvidence
from collector.trends.rules.details import details
from collector.trends.rules.lines import (
    describe,
    dropped_prompts,
    metric_declines,
    pooled_declines,
    prompt_notes,
)
from collector.trends.rules.raising import collapsed_prompts, pooled_and_tail
from collector.trends.rules.status import decide
from collector.trends.rules.sufficiency import detectable_text, insufficient_data
from collector.trends.rules.tally import tally
from collector.trends.thresholds import EVIDENCE_FAMILIES, Coverage, Thresholds
from collector.trends.trend import Trend
from collector.vocabulary import Status

__all__ = [
    "EVIDENCE_FAMILIES",
    "Coverage",
    "Thresholds",
    "Verdict",
    "describe",
    "detectable_text",
    "insufficient_data",
    "verdict",
]


@dataclass(frozen=True)
class Verdict:
    """``status``, ``reasons`` in words (worst first), and ``details`` for machines."""

    status: Status
    reasons: list[str]
    details: dict[str, Any] = field(default_factory=dict)


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
    t = tally(comparisons, trends, families, th, pooled=pooled, coverage=coverage)
    decision = decide(t, th).then(dropped_prompts(t, th))  # the status rules: the first that applies
    decision, evidence = pooled_and_tail(decision, t, th, pooled)
    decision = collapsed_prompts(decision, t, th, prompts)
    decision = decision.then(*prompt_notes(t, prompts), pooled_declines(t), *metric_declines(t, th))
    return Verdict(
        status=decision.status, reasons=list(decision.reasons), details=details(t, th, evidence, prompts)
    )
