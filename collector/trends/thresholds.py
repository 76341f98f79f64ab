"""What the verdict judges with: its thresholds, the families that count, what was compared.

Pure data, no I/O: :class:`Thresholds` counts each metric's ``significant_decline`` flags into a
status (the tests themselves live in :mod:`collector.trends.compare`); :class:`Coverage` says which
prompts and outputs the two sides had, so the verdict can name what it left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from collector.vocabulary import LONE_WATCH_METRICS

# The families whose declines are evidence of collapse; any other (``length``, ``tail``) never counts
# in the ``within`` verdict.
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
