"""The scrape-time collector renders a store snapshot as the documented metric families."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from collector.exporter import ChangeRow, HealthRow, Snapshot, StoreCollector, TrendRow, ValueRow, VersionRow


def snapshot() -> Snapshot:
    return Snapshot(
        baselines={"bot": "v1"},
        versions=[VersionRow("bot", "v1", 0, "ok"), VersionRow("bot", "v2", 1, "collapse_suspected")],
        values=[
            ValueRow("bot", "v1", "distinct_2", "within", 0.8, 0.75, 0.85),
            ValueRow("bot", "v2", "distinct_2", "within", 0.5, 0.45, float("nan")),
        ],
        changes=[ChangeRow("bot", "v2", "distinct_2", "within", "baseline", -0.375, -0.42, -0.33, 0.001)],
        trends=[TrendRow("bot", "distinct_2", "within", -0.3, 0.04, 2)],
        health=[
            HealthRow(
                "bot",
                runs_success=2,
                runs_failed=1,
                samples=96,
                sample_errors=3,
                last_run_ts=1_700_000_100.0,
                last_success_ts=1_700_000_000.0,
                last_duration=42.0,
                durations=[3.0, 42.0, 700.0],
                interval_seconds=1800.0,
            )
        ],
    )


def registry_for(load) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StoreCollector(load))
    return registry


def test_values_changes_verdicts_and_health() -> None:
    reg = registry_for(snapshot)
    get = reg.get_sample_value
    labels = {"model": "bot", "version": "v2", "metric": "distinct_2", "scope": "within"}
    assert get("collapse_watch_diversity", labels) == 0.5
    assert get("collapse_watch_diversity_ci_lower", labels) == 0.45
    assert get("collapse_watch_diversity_ci_upper", labels) is None  # NaN is omitted, never exported
    assert get("collapse_watch_diversity_change_ratio", {**labels, "reference": "baseline"}) == -0.375
    assert get("collapse_watch_diversity_declined", labels) == 1.0
    assert get("collapse_watch_diversity_declined", {**labels, "version": "v1"}) == 0.0
    assert (
        get("collapse_watch_verdict", {"model": "bot", "version": "v2", "verdict": "collapse_suspected"}) == 1
    )
    assert get("collapse_watch_verdict", {"model": "bot", "version": "v2", "verdict": "ok"}) == 0
    assert get("collapse_watch_collapse_suspected", {"model": "bot"}) == 1
    assert get("collapse_watch_latest_version_ordinal", {"model": "bot"}) == 1
    assert (
        get("collapse_watch_model_version_info", {"model": "bot", "version": "v1", "baseline_version": "v1"})
        == 1
    )
    assert (
        get("collapse_watch_trend_slope", {"model": "bot", "metric": "distinct_2", "scope": "within"}) == -0.3
    )
    assert get("collapse_watch_runs_total", {"model": "bot", "status": "failed"}) == 1
    assert get("collapse_watch_samples_total", {"model": "bot"}) == 96
    assert get("collapse_watch_run_duration_seconds_bucket", {"model": "bot", "le": "60.0"}) == 2
    assert get("collapse_watch_run_duration_seconds_count", {"model": "bot"}) == 3
    assert get("collapse_watch_schedule_interval_seconds", {"model": "bot"}) == 1800
    assert get("collapse_watch_up") == 1


def test_unreadable_store_exports_up_zero_and_no_model_series() -> None:
    def broken() -> Snapshot:
        raise RuntimeError("database is locked")

    reg = registry_for(broken)
    assert reg.get_sample_value("collapse_watch_up") == 0
    assert reg.get_sample_value("collapse_watch_collapse_suspected", {"model": "bot"}) is None
    assert (
        reg.get_sample_value(
            "collapse_watch_build_info", {"version": pytest.importorskip("collector").__version__}
        )
        == 1
    )


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)
def test_promtool_check_metrics_is_clean() -> None:
    text = generate_latest(registry_for(snapshot))
    proc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert proc.stdout.strip() == b"" and proc.stderr.strip() == b"", proc.stderr.decode()
