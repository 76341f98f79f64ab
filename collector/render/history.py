"""`collapse-watch history` as text: the metric-by-version table and the collapsed prompts, formatted
from the rows the store reads (``collector.store.history``)."""

from __future__ import annotations

import math

from collector.store.api import Store
from collector.store.history import ModelHistory, read_collapsed_prompts, read_history
from collector.trends.change import change, format_change


def history_table(store: Store, model: str, scope: str = "within") -> tuple[list[str], list[list[str]]]:
    """A metric-by-version table of the latest completed values: (columns, rows), no printing."""
    return format_history(read_history(store, model, scope))


def format_history(history: ModelHistory) -> tuple[list[str], list[list[str]]]:
    """(columns, rows) of the history table.

    Each version after the baseline shows its change vs the baseline version on the metric's scale
    (``0.676 (−28.6 pp)``, ``1.874 (×0.57)``; :mod:`collector.trends.change`); the last column is the
    stored trend over the last versions (``↓ −4.1%/version, p 0.03``; "–" under 3 versions).
    """
    versions = history.versions
    table = [
        [m, *(_value_cell(history, m, v) for v in versions), _trend_cell(history, m)]
        for m in sorted(history.values)
    ]
    if history.prompts_collapsed:  # per version: prompts that collapsed on their own vs the baseline (#26)
        counts = history.prompts_collapsed
        table.append(
            [
                "prompts collapsed",
                *(f"{counts[v][0]} of {counts[v][1]}" if v in counts else "" for v in versions),
                "",
            ]
        )
    if history.verdicts:
        table.append(["verdict", *(history.verdicts.get(v, "") for v in versions), ""])
    labels = [f"{v} (baseline)" if v == history.baseline else v for v in versions]
    return ["metric", *labels, "trend (diversity)"], table


def _value_cell(history: ModelHistory, metric: str, version: str) -> str:
    v = history.values[metric].get(version)
    if v is None:
        return ""
    if math.isnan(v):
        return "n/a"
    base = history.values[metric].get(history.baseline) if history.baseline else None
    if version == history.baseline or base is None or math.isnan(base):
        return f"{v:.4f}"
    if (metric, version) in history.other_embedder:
        return f"{v:.4f} (other embedder)"
    return f"{v:.4f} ({format_change(metric, change(metric, base, v))})"


def _trend_cell(history: ModelHistory, metric: str) -> str:
    t = history.trends.get(metric)
    if t is None or t.n_versions < 3 or math.isnan(t.slope):
        return "–"
    arrow = "↓" if t.slope < 0 else "↑"
    text = f"{arrow} {t.slope * 100:+.1f}%/version".replace("-", "−")
    return text + (f", p {t.p_value:.2f}" if not math.isnan(t.p_value) else "")


def collapsed_prompts(store: Store, model: str, limit: int = 10) -> tuple[str, list[tuple[str, str, str]]]:
    """The newest assessed version with collapsed prompts: (version, [(prompt key, prompt text,
    change of each headline metric)]), at most ``limit`` prompts; ("", []) when none collapsed."""
    version, prompts = read_collapsed_prompts(store, model, limit)
    return version, [
        (p.key, p.text, ", ".join(f"{metric} {format_change(metric, c)}" for metric, c in p.changes))
        for p in prompts
    ]
