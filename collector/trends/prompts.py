"""Which prompts collapsed: per-prompt findings under false-discovery control, and their rule.

Collapse often starts on a few prompts (topics, tenants) before the mean over prompts moves: the
paired test on the mean dilutes a concentrated effect.  Each headline metric is therefore also
tested on every prompt alone (:mod:`collector.metrics.prompt_test`: a permutation test on the
prompt's own outputs), the p-values of a metric are adjusted across prompts with Benjamini-Hochberg
(step-up, false-discovery rate ``prompt_fdr``), and a prompt is *collapsed* when, for every headline
metric compared, its adjusted p-value is below ``prompt_fdr`` AND its decline exceeds the metric's
floor (``prompt_min_decline``: an effect a healthy resample of the same model does not reach).
Agreement of the headline metrics mirrors the verdict's agreement of families: words and content.

The rule: at least ``min_collapsed_prompts`` collapsed prompts (and at least
``min_collapsed_share`` of the prompts compared) gives at least ``watch``.  Pure; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from collector.metrics.prompt_test import PromptTest
from collector.trends.change import change as metric_change
from collector.trends.change import format_change, scale_of

#: The reasons show at most this many collapsed prompts (the worst first) and this many characters
#: of each prompt's text.
REASON_PROMPTS = 3
REASON_PROMPT_CHARS = 60
#: A prompt's permutation test needs this many outputs on each side (one output has no split).
MIN_OUTPUTS = 2


def bh_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (step-up); NaN stays NaN and does not count in m."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return out


@dataclass(frozen=True)
class MetricFinding:
    """One headline metric on one prompt."""

    metric: str
    base_value: float
    cand_value: float
    change: float  # on the metric's scale: a difference (rates) or candidate / baseline − 1
    p_value: float
    adjusted_p: float
    collapsed: bool  # adjusted p below the FDR and the decline beyond the metric's floor


@dataclass(frozen=True)
class PromptFinding:
    """One prompt: its text (as stored; may be empty) and each headline metric's finding."""

    prompt_id: str
    prompt: str
    metrics: dict[str, MetricFinding]
    collapsed: bool  # collapsed in every headline metric compared
    severity: float  # the first headline metric's decline in diversity (more negative is worse)

    def as_dict(self, text_limit: int | None = None) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "prompt": self.prompt if text_limit is None else shorten(self.prompt, text_limit),
            "collapsed": self.collapsed,
            "metrics": {m: asdict(f) for m, f in self.metrics.items()},
        }


@dataclass(frozen=True)
class PromptEvidence:
    """The per-prompt findings of one comparison and whether the rule was reached."""

    findings: list[PromptFinding]  # every prompt compared, the worst first
    metrics: tuple[str, ...]  # the headline metrics tested
    fdr: float
    need: int  # collapsed prompts the rule needs
    min_p: float  # the smallest p-value the prompts' outputs allowed (NaN: untestable)
    notes: list[str] = field(default_factory=list)

    @property
    def collapsed(self) -> list[PromptFinding]:
        return [f for f in self.findings if f.collapsed]

    @property
    def n_prompts(self) -> int:
        return len(self.findings)

    @property
    def reached(self) -> bool:
        return bool(self.findings) and len(self.collapsed) >= self.need

    @property
    def can_detect(self) -> bool:
        """Whether the outputs per prompt allow a prompt to survive the correction at all: in BH's
        best case every prompt is at the smallest p-value, whose adjusted value is then that
        p-value itself (``min_p · m / m``), so a prompt can be named when ``min_p < fdr`` (with 4
        outputs a side, 1/70: several prompts declining together survive where one alone cannot)."""
        return bool(math.isfinite(self.min_p) and self.min_p < self.fdr)

    def summary(self, baseline_label: str = "baseline") -> str:
        """``4 of 40 prompts collapsed (distinct_2 and vendi_score, each at FDR 0.05): "Write a…"
        distinct_2 −38.0 pp, …`` (the worst first; at most ``REASON_PROMPTS`` named)."""
        bad = self.collapsed
        head = (
            f"{len(bad)} of {self.n_prompts} prompts collapsed vs {baseline_label} "
            f"({' and '.join(self.metrics)} each declined beyond its floor at FDR {self.fdr:g})"
        )
        if not bad:
            return head
        named = [describe_prompt(f) for f in bad[:REASON_PROMPTS]]
        more = f", and {len(bad) - REASON_PROMPTS} more" if len(bad) > REASON_PROMPTS else ""
        return f"{head}: " + "; ".join(named) + more

    def as_dict(self, all_findings: bool = True, text_limit: int | None = None) -> dict[str, Any]:
        """For machines; ``all_findings=False`` keeps the collapsed prompts only (a stored verdict's
        details: the findings table holds the rest), ``text_limit`` shortens prompt texts."""
        shown = self.findings if all_findings else self.collapsed
        return {
            "metrics": list(self.metrics),
            "fdr": self.fdr,
            "n_prompts": self.n_prompts,
            "n_collapsed": len(self.collapsed),
            "need": self.need,
            "rule_reached": self.reached,
            "min_p": None if not math.isfinite(self.min_p) else self.min_p,
            "can_detect": self.can_detect,
            "notes": list(self.notes),
            "collapsed": [f.prompt_id for f in self.collapsed],
            "findings": [f.as_dict(text_limit) for f in shown],
        }


def shorten(text: str, limit: int = REASON_PROMPT_CHARS) -> str:
    """One line of at most ``limit`` characters: control characters as spaces, cut with ``…``."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def describe_prompt(f: PromptFinding) -> str:
    """``"Write a story…" (p-1a2b) distinct_2 −38.0 pp``: the text as data in quotes, the id, the
    first headline metric's change."""
    key = shorten(f.prompt_id, 40)
    label = f'"{shorten(f.prompt)}" ({key})' if f.prompt else key
    first = next(iter(f.metrics.values()))
    return f"{label} {first.metric} {format_change(first.metric, first.change)}"


def _decline(metric: str, higher_is_diverse: bool, base: float, cand: float) -> float:
    """The change oriented so that negative is less diverse, on the metric's scale."""
    c = metric_change(metric, base, cand)
    if not higher_is_diverse:
        c = -c if scale_of(metric) == "difference" else (1.0 / (1.0 + c) - 1.0 if c > -1 else math.inf)
    return c


def assess_prompts(
    tests: Mapping[str, list[PromptTest]],
    directions: Mapping[str, bool],
    texts: Mapping[str, str],
    *,
    fdr: float,
    floors: Mapping[str, float],
    min_count: int,
    min_share: float,
) -> PromptEvidence:
    """Per-prompt findings from each headline metric's permutation tests.

    ``directions[metric]`` is ``higher_is_diverse``; ``floors[metric]`` the least decline in
    diversity that counts (positive; on the metric's scale: a difference for rates, ``1 − ratio``
    otherwise); ``texts`` the prompts' texts by id.
    """
    metrics = tuple(m for m in tests if tests[m])
    per_prompt: dict[str, dict[str, MetricFinding]] = {}
    min_p = math.inf
    for m in metrics:
        rows = tests[m]
        adjusted = bh_adjust([t.p_value for t in rows])
        floor = floors.get(m, 0.0)
        for t, adj in zip(rows, adjusted, strict=True):
            c = metric_change(m, t.base_value, t.cand_value)
            decline = _decline(m, directions.get(m, True), t.base_value, t.cand_value)
            hit = bool(math.isfinite(adj) and adj < fdr and decline <= -floor)
            per_prompt.setdefault(t.prompt_id, {})[m] = MetricFinding(
                m, t.base_value, t.cand_value, c, t.p_value, float(adj), hit
            )
            if math.isfinite(t.min_p):
                min_p = min(min_p, t.min_p)
    findings = []
    for pid, found in per_prompt.items():
        first = found.get(metrics[0]) if metrics else None
        sev = (
            _decline(first.metric, directions.get(first.metric, True), first.base_value, first.cand_value)
            if first is not None
            else math.nan
        )
        collapsed = len(found) == len(metrics) and all(f.collapsed for f in found.values())
        findings.append(PromptFinding(pid, texts.get(pid, ""), found, collapsed, sev))
    findings.sort(key=lambda f: (not f.collapsed, f.severity if math.isfinite(f.severity) else math.inf))
    need = max(1, min_count, math.ceil(min_share * len(findings)))
    notes = []
    short = {t.prompt_id: t for m in metrics for t in tests[m] if min(t.n_base, t.n_cand) < MIN_OUTPUTS}
    if short:
        fewest = min(short.values(), key=lambda t: min(t.n_base, t.n_cand))
        which = "every prompt" if len(short) == len(findings) else f"{len(short)} of {len(findings)} prompts"
        notes.append(
            f"per-prompt test skipped for {which}: needs at least {MIN_OUTPUTS} outputs per prompt on "
            f"each side (fewest: {fewest.n_base} baseline, {fewest.n_cand} candidate)"
        )
    return PromptEvidence(findings, metrics, fdr, need, min_p if math.isfinite(min_p) else math.nan, notes)
