"""The exporter's ``Snapshot`` read from the store: what one Prometheus scrape renders.

``load_snapshot(store)`` is what ``serve-metrics`` passes to ``StoreCollector``; the reads are
``Store.overview()`` (a handful of queries), this module only maps them onto the exporter's rows
and applies the contract in docs/metrics.md: version ordinals from 0, trends only from 3 versions.
"""

from __future__ import annotations

import math

from collector.exporter import ChangeRow, HealthRow, Snapshot, TrendRow, ValueRow, VersionRow
from collector.store.api import Store

MIN_TREND_VERSIONS = 3  # the contract omits trends fitted on fewer versions


def _f(x: float | None) -> float:
    return math.nan if x is None else float(x)


def load_snapshot(
    store: Store,
    *,
    max_versions: int = 10,
    intervals: dict[str, float] | None = None,
    max_durations: int = 1000,
) -> Snapshot:
    """Everything one scrape exports; ``intervals`` maps model -> schedule interval in seconds."""
    ov = store.overview(max_versions=max_versions, max_durations=max_durations)
    intervals = intervals or {}
    return Snapshot(
        baselines=dict(ov.baselines),
        versions=[VersionRow(v.model, v.version, v.ordinal - 1, v.verdict) for v in ov.versions],
        values=[
            ValueRow(
                r["model"],
                r["version"],
                r["metric"],
                r["scope"],
                _f(r["value"]),
                _f(r["ci_low"]),
                _f(r["ci_high"]),
            )
            for r in ov.values
        ],
        changes=[
            ChangeRow(
                r["model"],
                r["version"],
                r["metric"],
                r["scope"],
                r["reference"],
                _f(r["diversity_change"]),
                _f(r["diversity_ci_low"]),
                _f(r["diversity_ci_high"]),
                _f(r["p_value"]),
            )
            for r in ov.changes
        ],
        trends=[
            TrendRow(r["model"], r["metric"], r["scope"], _f(r["slope"]), _f(r["p_value"]), r["n_versions"])
            for r in ov.trends
            if r["n_versions"] >= MIN_TREND_VERSIONS
        ],
        health=[
            HealthRow(
                h.model,
                runs_success=h.runs_success,
                runs_failed=h.runs_failed,
                samples=h.samples,
                sample_errors=h.sample_errors,
                last_run_ts=h.last_run_ts,
                last_success_ts=h.last_success_ts,
                last_duration=h.last_duration,
                durations=h.durations,
                interval_seconds=intervals.get(h.model),
            )
            for h in ov.health
        ],
    )
