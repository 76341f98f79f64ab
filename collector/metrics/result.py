"""Scored results: what the suite produces and the store, trends, exporter and CLI consume."""

from __future__ import annotations

from dataclasses import dataclass, field

from collector.metrics.base import Family, Scope


@dataclass(frozen=True)
class MetricValue:
    """One metric in one scope, with its bootstrap 95% interval (resampling prompts)."""

    metric: str
    scope: Scope
    value: float  # NaN when the batch cannot be scored (e.g. every prompt has one output)
    ci_low: float
    ci_high: float
    n_samples: int
    n_prompts: int
    family: Family
    higher_is_diverse: bool


@dataclass
class SuiteResult:
    """Everything one scoring pass produced.

    ``per_prompt[metric][prompt_id]`` holds the ``within`` value of every prompt: comparisons
    between versions pair prompts on it (the probe set is the same for every version).
    """

    n_samples: int
    n_prompts: int
    values: list[MetricValue]
    per_prompt: dict[str, dict[str, float]] = field(default_factory=dict)
    n_blank: int = 0  # outputs that were empty or whitespace only (scored, and reported)
    seed: int = 0
    n_bootstrap: int = 0

    def get(self, metric: str, scope: Scope) -> MetricValue:
        for v in self.values:
            if v.metric == metric and v.scope == scope:
                return v
        raise KeyError(f"{metric}/{scope}")
