"""The default metric suite and selection by name."""

from __future__ import annotations

from collections.abc import Sequence

from collector.metrics.base import Metric


def all_metrics() -> list[Metric]:
    """Every metric of the default suite, lexical first, then embedding."""
    from collector.metrics.embedding import EMBEDDING_METRICS
    from collector.metrics.lexical import LEXICAL_METRICS

    return [*LEXICAL_METRICS, *EMBEDDING_METRICS]


def metric_names() -> list[str]:
    return [m.name for m in all_metrics()]


def select_metrics(names: Sequence[str] | None) -> list[Metric]:
    """The named metrics in suite order; ``None``, ``"default"`` (a model's ``metrics:`` setting) or
    ``["default"]`` selects the whole suite."""
    metrics = all_metrics()
    if names is None or names == "default" or list(names) == ["default"]:
        return metrics
    by_name = {m.name: m for m in metrics}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown metric(s): {', '.join(unknown)}; known metrics: {', '.join(by_name)}")
    wanted = set(names)
    return [m for m in metrics if m.name in wanted]


def needs_embeddings(names: Sequence[str] | None) -> bool:
    return any(m.needs_embeddings for m in select_metrics(names))
