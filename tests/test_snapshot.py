"""The store as Prometheus sees it: load_snapshot + the real StoreCollector on both databases."""

from __future__ import annotations

import time

import pytest
from assessment_data import FAST, embed, store_file
from prometheus_client import CollectorRegistry
from sqlalchemy import event
from store_helpers import full_run, migrated_store, samples

from collector.assessment import assess_model
from collector.readout.exporter import StoreCollector
from collector.readout.snapshot import load_snapshot
from collector.store import Store


def registry(store: Store, **kw: object) -> CollectorRegistry:
    kw.setdefault("detail", "full")
    reg = CollectorRegistry()
    reg.register(StoreCollector(lambda: load_snapshot(store, **kw)))  # type: ignore[arg-type]
    return reg


def samples_of(reg: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for fam in reg.collect() for s in fam.samples if s.name == name]


@pytest.mark.slow
def test_falling_diversity_is_exported_as_collapse(db_url: str) -> None:
    store = migrated_store(db_url)
    started = time.time()
    for version, name in [("v1", "series_v1"), ("v3", "series_v3"), ("v4", "series_v4")]:
        store_file(store, "smol", version, name, embedded=True)
        assess_model(store, "smol", embed=embed, **FAST)
    failed = store.begin_run("smol", "v4")
    store.add_samples(failed, samples(["a", None]))
    store.finish_run(failed, "failed", "endpoint down")
    running = store.begin_run("smol", "v4")  # still running: not counted as a run
    store.add_samples(running, samples(["b"]))

    reg = registry(store, intervals={"smol": 1800.0})
    get = reg.get_sample_value
    m = {"model": "smol"}
    v4 = {**m, "version": "v4", "metric": "distinct_2", "scope": "within"}
    ((labels, value),) = samples_of(reg, "collapse_watch_collapse_suspected")
    assert value == 1 and labels["version"] == "v4"
    # worst: the metrics the verdict counted as declined, most negative change first
    changes = {
        c.metric: c.change
        for c in load_snapshot(store).changes
        if c.version == "v4" and c.reference == "baseline" and c.scope == "within" and c.significant_decline
    }
    assert labels["worst"].split(",") == sorted(changes, key=lambda k: (changes[k], k))[:3]
    assert get("collapse_watch_verdict", {**m, "version": "v4", "verdict": "collapse_suspected"}) == 1
    assert get("collapse_watch_verdict", {**m, "version": "v4", "verdict": "ok"}) == 0
    assert get("collapse_watch_verdict", {**m, "version": "v1", "verdict": "ok"}) == 1
    change = get("collapse_watch_diversity_change", {**v4, "reference": "baseline"})
    step = get("collapse_watch_diversity_change", {**v4, "reference": "previous"})
    assert change is not None and step is not None and change < step < 0
    assert get("collapse_watch_diversity_change_ci_upper", {**v4, "reference": "baseline"}) < 0
    assert get("collapse_watch_diversity_declined", v4) == 1
    assert get("collapse_watch_diversity_declined", {**v4, "version": "v1"}) == 0
    # the reference itself has no change series (contract: omitted, never 0 or NaN)
    assert get("collapse_watch_diversity_change", {**v4, "version": "v1", "reference": "baseline"}) is None
    sb = {**v4, "metric": "self_bleu", "reference": "baseline"}  # lower is more diverse: still negative
    assert get("collapse_watch_diversity_change", sb) < 0
    assert get("collapse_watch_diversity", v4) < get("collapse_watch_diversity", {**v4, "version": "v1"})
    assert get("collapse_watch_version_ordinal", {**m, "version": "v1"}) == 0
    assert get("collapse_watch_latest_version_ordinal", m) == 2
    trend = {**m, "metric": "distinct_2", "scope": "within"}
    assert get("collapse_watch_trend_slope", trend) < 0 and get("collapse_watch_trend_versions", trend) == 3

    assert get("collapse_watch_runs_total", {**m, "status": "success"}) == 3
    assert get("collapse_watch_runs_total", {**m, "status": "failed"}) == 1
    # samples_total counts outputs stored, sample_errors_total failed requests: their sum is requests made
    assert get("collapse_watch_samples_total", m) == 3 * 64 + 1 + 1
    assert get("collapse_watch_sample_errors_total", m) == 1
    assert get("collapse_watch_run_duration_seconds_count", m) == 4  # the running run is not timed
    last_ok, last_run = (
        get("collapse_watch_last_success_timestamp_seconds", m),
        get("collapse_watch_last_run_timestamp_seconds", m),
    )
    assert started - 5 < last_ok < last_run < time.time() + 5  # the failed run finished last
    assert 0 <= get("collapse_watch_last_run_duration_seconds", m) < 60
    assert get("collapse_watch_schedule_interval_seconds", m) == 1800
    assert get("collapse_watch_up") == 1


def test_version_window_keeps_the_baseline_and_counts_queries(db_url: str) -> None:
    store = migrated_store(db_url)
    for i, value in enumerate([0.9, 0.8, 0.7, 0.6, 0.5], start=1):
        full_run(store, "small", f"v{i}", value)
    full_run(store, "other", "a", 0.5, status="failed")
    store.set_baseline("small", "v2")

    statements: list[str] = []

    def count(conn, cursor, statement, *rest) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    snap = load_snapshot(store, max_versions=2, detail="full")
    event.remove(store.engine, "before_cursor_execute", count)
    assert 1 <= len(statements) <= 8, statements  # a handful of queries, not one per metric

    exported = [(v.model, v.version, v.ordinal) for v in snap.versions]
    assert exported == [("other", "a", 1), ("small", "v2", 2), ("small", "v4", 4), ("small", "v5", 5)]
    assert {r.version for r in snap.values if r.model == "small"} == {"v2", "v4", "v5"}
    assert snap.baselines == {"other": "a", "small": "v2"}
    assert snap.changes == [] and snap.trends == []  # nothing assessed yet

    get = registry(store, max_versions=2).get_sample_value
    key = {"model": "small", "metric": "distinct_2", "scope": "within"}
    assert get("collapse_watch_diversity", {**key, "version": "v1"}) is None
    assert get("collapse_watch_diversity", {**key, "version": "v3"}) is None
    assert get("collapse_watch_diversity", {**key, "version": "v2"}) == pytest.approx(0.8)
    assert (
        get(
            "collapse_watch_model_version_info", {"model": "small", "version": "v2", "baseline_version": "v2"}
        )
        == 1
    )
    assert get("collapse_watch_latest_version_ordinal", {"model": "small"}) == 4
    assert get("collapse_watch_verdict", {"model": "small", "version": "v5", "verdict": "ok"}) is None
    # a model with only a failed run: health only, no last success, both statuses present
    assert get("collapse_watch_runs_total", {"model": "other", "status": "success"}) == 0
    assert get("collapse_watch_runs_total", {"model": "other", "status": "failed"}) == 1
    assert get("collapse_watch_last_success_timestamp_seconds", {"model": "other"}) is None
    assert get("collapse_watch_last_run_timestamp_seconds", {"model": "other"}) is not None
    assert get("collapse_watch_schedule_interval_seconds", {"model": "other"}) is None
