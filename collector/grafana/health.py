"""The health dashboard (``collapse-watch-health``): the collector itself: runs by status, failures,
samples, sample errors, age of the last success, run-duration quantiles, exporter health."""

from __future__ import annotations

from collections.abc import Sequence

from collector.grafana.board import dashboard, variable_datasource, variable_model
from collector.grafana.panels import (
    Dashboard,
    Panel,
    bars,
    layout,
    panel,
    stacked_bars,
    stat,
    target,
    thresholds,
)


def health_dashboard() -> Dashboard:
    """The collector itself: runs, failures, samples, staleness, durations, exporter health."""
    sel = 'model=~"$model"'
    runs = panel(
        "timeseries",
        "Runs per hour by status",
        "Collection runs per model and status (success / failed) over the last hour.",
        [
            target(
                f"sum by (model, status) (increase(collapse_watch_runs_total{{{sel}}}[1h]))",
                "{{model}} {{status}}",
            )
        ],
        "short",
        custom=stacked_bars(),
        min_=0,
    )
    failed = panel(
        "timeseries",
        "Failed-run ratio (6h)",
        "Share of runs that failed over 6 hours; CollapseWatchRunsFailing fires above 50%.",
        [
            target(
                f'sum by (model) (increase(collapse_watch_runs_total{{{sel},status="failed"}}[6h])) '
                f"/ (sum by (model) (increase(collapse_watch_runs_total{{{sel}}}[6h])) > 0)",
                "{{model}}",
            )
        ],
        "percentunit",
        thresholds=thresholds((None, "green"), (0.5, "red")),
        custom={"thresholdsStyle": {"mode": "line"}},
        min_=0,
    )
    samples = panel(
        "timeseries",
        "Samples and sample errors per hour",
        "Model outputs sampled per hour, and sampling requests that failed after retries.",
        [
            target(
                f"sum by (model) (increase(collapse_watch_samples_total{{{sel}}}[1h]))", "{{model}} samples"
            ),
            target(
                f"sum by (model) (increase(collapse_watch_sample_errors_total{{{sel}}}[1h]))",
                "{{model}} errors",
            ),
        ],
        "short",
        min_=0,
    )
    error_ratio = panel(
        "timeseries",
        "Sample error ratio (1h)",
        "Failed sampling requests per request attempted over the last hour; "
        "CollapseWatchSampleErrorsHigh fires above 20%.",
        [
            target(
                f"sum by (model) (increase(collapse_watch_sample_errors_total{{{sel}}}[1h])) / "
                f"((sum by (model) (increase(collapse_watch_samples_total{{{sel}}}[1h])) + "
                f"sum by (model) (increase(collapse_watch_sample_errors_total{{{sel}}}[1h]))) > 0)",
                "{{model}}",
            )
        ],
        "percentunit",
        thresholds=thresholds((None, "green"), (0.2, "red")),
        custom={"thresholdsStyle": {"mode": "line"}},
        min_=0,
    )
    age = panel(
        "bargauge",
        "Time since last successful run",
        "Age of each model's last successful run. Compare with the schedule interval: CollectorStale fires "
        "after 3 intervals.",
        [
            target(
                f"sort_desc(time() - collapse_watch_last_success_timestamp_seconds{{{sel}}})",
                "{{model}}",
                instant=True,
            )
        ],
        "s",
        options=bars(),
        thresholds=thresholds((None, "green"), (3600, "orange"), (4 * 3600, "red")),
        min_=0,
    )
    age_intervals = panel(
        "bargauge",
        "Schedule intervals since last success",
        "Age of the last successful run divided by the model's schedule interval; 3 or more is stale.",
        [
            target(
                f"sort_desc((time() - collapse_watch_last_success_timestamp_seconds{{{sel}}}) "
                f"/ collapse_watch_schedule_interval_seconds{{{sel}}})",
                "{{model}}",
                instant=True,
            )
        ],
        "none",
        options=bars(),
        thresholds=thresholds((None, "green"), (2, "orange"), (3, "red")),
        min_=0,
    )
    quantiles = panel(
        "timeseries",
        "Run duration quantiles (6h)",
        "Median, 90th and 99th percentile of collection-run wall time over 6 hours, from the "
        "collapse_watch_run_duration_seconds histogram.",
        [
            target(
                f"histogram_quantile({q}, sum by (model, le) "
                f"(rate(collapse_watch_run_duration_seconds_bucket{{{sel}}}[6h])))",
                f"{{{{model}}}} p{int(q * 100)}",
            )
            for q in (0.5, 0.9, 0.99)
        ],
        "s",
        min_=0,
    )
    last_duration = panel(
        "timeseries",
        "Last run duration",
        "Wall time of each model's latest run.",
        [target(f"collapse_watch_last_run_duration_seconds{{{sel}}}", "{{model}}")],
        "s",
        min_=0,
    )
    up = panel(
        "stat",
        "Exporter up / store readable",
        "up: Prometheus can scrape the collector (CollectorDown). store: the exporter could read its "
        "database during the scrape (collapse_watch_up, CollapseWatchStoreUnavailable).",
        [
            target('up{job="collapse-watch"}', "up {{instance}}", instant=True),
            target("collapse_watch_up", "store {{instance}}", instant=True),
        ],
        "none",
        mappings=[
            {
                "type": "value",
                "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}},
            }
        ],
        thresholds=thresholds((None, "red"), (1, "green")),
        options=stat("value_and_name"),
    )
    scrape = panel(
        "timeseries",
        "Exporter scrape duration",
        "Time the exporter spent reading the store per scrape; it should stay well below the scrape timeout.",
        [target("collapse_watch_scrape_duration_seconds", "{{instance}}")],
        "s",
        min_=0,
    )
    rows: list[Sequence[tuple[Panel, int, int]]] = [
        [(up, 8, 5), (age, 8, 5), (age_intervals, 8, 5)],
        [(runs, 12, 8), (failed, 12, 8)],
        [(samples, 12, 8), (error_ratio, 12, 8)],
        [(quantiles, 12, 8), (last_duration, 6, 8), (scrape, 6, 8)],
    ]
    return dashboard(
        "health",
        "collapse-watch / collector health",
        "Is the collector running, succeeding and fresh?",
        [variable_datasource(), variable_model(multi=True)],
        layout(rows),
    )
