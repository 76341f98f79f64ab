"""Rich tables for scored results."""

from __future__ import annotations

import math

from rich.table import Table

from collector.metrics.result import MetricValue, SuiteResult


def fmt(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}" if abs(x) >= 1e4 else f"{x:.{digits}f}"


def fmt_ci(lo: float, hi: float) -> str:
    if math.isnan(lo) or math.isnan(hi):
        return "–"
    return f"[{fmt(lo)}, {fmt(hi)}]"


def suite_table(result: SuiteResult, title: str | None = None) -> Table:
    """One row per metric: within and across values with their 95% intervals and direction."""
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("metric")
    table.add_column("family", style="dim")
    table.add_column("within", justify="right")
    table.add_column("within 95% CI", justify="right", style="dim")
    table.add_column("across", justify="right")
    table.add_column("across 95% CI", justify="right", style="dim")
    table.add_column("more diverse", justify="center")
    by_metric: dict[str, dict[str, MetricValue]] = {}
    for v in result.values:
        by_metric.setdefault(v.metric, {})[v.scope] = v
    for name, scopes in by_metric.items():
        first = next(iter(scopes.values()))
        cells: list[str] = []
        for scope in ("within", "across"):
            v = scopes.get(scope)
            cells += [fmt(v.value), fmt_ci(v.ci_low, v.ci_high)] if v else ["–", "–"]
        table.add_row(name, first.family, *cells, "↑" if first.higher_is_diverse else "↓")
    return table


def suite_json(result: SuiteResult) -> dict[str, object]:
    """The documented machine-readable shape of a scored file."""

    def num(x: float) -> float | None:
        return None if math.isnan(x) else x

    metrics: dict[str, dict[str, object]] = {}
    for v in result.values:
        entry = metrics.setdefault(v.metric, {})
        entry[v.scope] = num(v.value)
        entry[f"{v.scope}_ci"] = [num(v.ci_low), num(v.ci_high)]
        entry["family"] = v.family
        entry["higher_is_diverse"] = v.higher_is_diverse
    return {
        "n_samples": result.n_samples,
        "n_prompts": result.n_prompts,
        "n_blank": result.n_blank,
        "bootstrap": {"replicates": result.n_bootstrap, "seed": result.seed, "confidence": 0.95},
        "metrics": metrics,
    }
