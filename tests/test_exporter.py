"""The scrape-time collector renders a store snapshot as the documented metric families."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from collector.readout.exporter import StoreCollector
from collector.readout.snapshot import Snapshot
from collector.store.overview import ModelHealth, ValueRow, VersionState
from collector.vocabulary import ChangeRow, TrendRow


def snapshot(detail: str = "full") -> Snapshot:
    return Snapshot(
        detail=detail,  # type: ignore[arg-type]
        intervals={"bot": 1800.0},
        baselines={"bot": "v1"},
        versions=[
            VersionState("bot", "v1", 11, 1, "ok", first_seen=1_699_000_000.0),
            VersionState(
                "bot", "v2", 12, 2, "collapse_suspected", False, ("distinct_2",), first_seen=1_699_500_000.0
            ),
        ],
        values=[
            ValueRow("bot", "v1", "distinct_2", "within", 0.8, 0.75, 0.85),
            ValueRow("bot", "v2", "distinct_2", "within", 0.5, 0.45, float("nan")),
            ValueRow("bot", "v2", "ngram_entropy_1", "within", 4.0, 3.9, 4.1),
        ],
        changes=[
            ChangeRow("bot", "v2", "distinct_2", "within", "baseline", -0.375, -0.42, -0.33, 0.001, True),
            ChangeRow("bot", "v2", "vendi_score", "within", "baseline", -0.5, -0.6, -0.4, 0.001, True),
            # the interval is below 0 but the verdict did not count it (e.g. under its minimum effect)
            ChangeRow(
                "bot", "v2", "ngram_entropy_1", "within", "baseline", -0.047, -0.06, -0.03, 0.01, False
            ),
            ChangeRow("bot", "v2", "distinct_2", "within", "previous", -0.375, -0.42, -0.33, 0.001, True),
            ChangeRow("bot", "v2", "ngram_entropy_1", "within", "previous", -0.05, -0.06, -0.03, 0.01, False),
        ],
        trends=[
            TrendRow("bot", "distinct_2", "within", -0.3, 0.04, 3),
            TrendRow("bot", "distinct_2", "across", -0.2, 0.03, 3),
            TrendRow("bot", "ngram_entropy_1", "within", -0.1, 0.2, 3),
            TrendRow("bot", "ngram_entropy_1", "across", -0.1, 0.2, 3),
        ],
        health=[
            ModelHealth(
                "bot",
                runs={"success": 2, "partial": 1, "failed": 1, "no_data": 0},
                samples=96,
                sample_errors=3,
                last_run_ts=1_700_000_100.0,
                last_success_ts=1_700_000_000.0,
                last_duration=42.0,
                durations=[3.0, 42.0, 700.0],
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
    assert get("collapse_watch_diversity_change", {**labels, "reference": "baseline"}) == -0.375
    assert get("collapse_watch_diversity_declined", labels) == 1.0
    assert get("collapse_watch_diversity_declined", {**labels, "version": "v1"}) == 0.0
    assert (
        get("collapse_watch_verdict", {"model": "bot", "version": "v2", "verdict": "collapse_suspected"}) == 1
    )
    assert get("collapse_watch_verdict", {"model": "bot", "version": "v2", "verdict": "ok"}) == 0
    decision = {"model": "bot", "version": "v2", "worst": "vendi_score,distinct_2"}
    assert get("collapse_watch_collapse_suspected", decision) == 1
    assert get("collapse_watch_diversity_watch", decision) == 0
    assert get("collapse_watch_trend_declining", {**decision, "worst": "distinct_2"}) == 0
    # "declined" is the verdict's own flag, never a second rule (the interval alone is below 0)
    assert get("collapse_watch_diversity_declined", {**labels, "metric": "ngram_entropy_1"}) == 0
    assert get("collapse_watch_latest_version_ordinal", {"model": "bot"}) == 1
    assert (
        get("collapse_watch_model_version_info", {"model": "bot", "version": "v1", "baseline_version": "v1"})
        == 1
    )
    assert (
        get("collapse_watch_trend_slope", {"model": "bot", "metric": "distinct_2", "scope": "within"}) == -0.3
    )
    assert get("collapse_watch_runs_total", {"model": "bot", "status": "failed"}) == 1
    assert get("collapse_watch_runs_total", {"model": "bot", "status": "partial"}) == 1
    assert get("collapse_watch_runs_total", {"model": "bot", "status": "no_data"}) == 0
    assert get("collapse_watch_samples_total", {"model": "bot"}) == 96
    assert get("collapse_watch_run_duration_seconds_bucket", {"model": "bot", "le": "60.0"}) == 2
    assert get("collapse_watch_run_duration_seconds_count", {"model": "bot"}) == 3
    assert get("collapse_watch_schedule_interval_seconds", {"model": "bot"}) == 1800
    assert get("collapse_watch_up") == 1
    assert get("collapse_watch_snapshot_age_seconds") == 0


def test_summary_detail_keeps_the_latest_version_and_the_headline_metrics_detail() -> None:
    """summary: every metric's value, change vs baseline and trend (within) of the latest version;
    the headline metrics (what the dashboards show) also with intervals, p-values, the change vs
    the previous version and trends in both scopes; a non-headline metric without them."""
    get = registry_for(lambda: snapshot("summary")).get_sample_value
    v2 = {"model": "bot", "version": "v2", "metric": "distinct_2", "scope": "within"}
    other = {**v2, "metric": "ngram_entropy_1"}
    assert get("collapse_watch_diversity", v2) == 0.5
    assert get("collapse_watch_diversity", {**v2, "version": "v1"}) is None
    assert get("collapse_watch_diversity_ci_lower", v2) == 0.45
    assert get("collapse_watch_diversity", other) == 4.0
    assert get("collapse_watch_diversity_ci_lower", other) is None
    assert get("collapse_watch_diversity_change_ci_upper", {**v2, "reference": "baseline"}) == -0.33
    assert get("collapse_watch_diversity_change_p_value", {**v2, "reference": "baseline"}) == 0.001
    assert get("collapse_watch_diversity_change", {**other, "reference": "baseline"}) == -0.047
    for fam in ("ci_upper_ratio", "ci_lower_ratio", "p_value"):
        assert get(f"collapse_watch_diversity_change_{fam}", {**other, "reference": "baseline"}) is None
    # vs previous: the headline change alone (its interval and p-value only at full)
    assert get("collapse_watch_diversity_change", {**v2, "reference": "previous"}) == -0.375
    assert get("collapse_watch_diversity_change_p_value", {**v2, "reference": "previous"}) is None
    assert get("collapse_watch_diversity_change", {**other, "reference": "previous"}) is None
    trend = {"model": "bot", "metric": "distinct_2", "scope": "within"}
    assert get("collapse_watch_trend_slope", trend) == -0.3
    assert get("collapse_watch_trend_p_value", trend) == 0.04
    assert get("collapse_watch_trend_slope", {**trend, "scope": "across"}) == -0.2
    assert get("collapse_watch_trend_p_value", {**trend, "scope": "across"}) == 0.03
    assert get("collapse_watch_trend_versions", trend) is None
    other_trend = {**trend, "metric": "ngram_entropy_1"}
    assert get("collapse_watch_trend_slope", other_trend) == -0.1
    assert get("collapse_watch_trend_p_value", other_trend) is None
    assert get("collapse_watch_trend_slope", {**other_trend, "scope": "across"}) is None
    assert get("collapse_watch_verdict", {"model": "bot", "version": "v1", "verdict": "ok"}) == 1
    first_seen = "collapse_watch_version_first_seen_timestamp_seconds"
    assert get(first_seen, {"model": "bot", "version": "v1"}) == 1_699_000_000.0
    assert get(first_seen, {"model": "bot", "version": "v2"}) == 1_699_500_000.0


def test_unreadable_store_exports_up_zero_and_no_model_series() -> None:
    def broken() -> Snapshot:
        raise RuntimeError("database is locked")

    reg = registry_for(broken)
    assert reg.get_sample_value("collapse_watch_up") == 0
    assert (
        reg.get_sample_value("collapse_watch_verdict", {"model": "bot", "version": "v2", "verdict": "ok"})
        is None
    )
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
