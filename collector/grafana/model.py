"""The model dashboard (``collapse-watch-model``): one model, each selected metric across versions
with its 95% interval, the change vs baseline and vs the previous version, trend slopes, recent runs."""

from __future__ import annotations

from collections.abc import Sequence

from collector.grafana.board import (
    annotation_versions,
    dashboard,
    variable_datasource,
    variable_metric,
    variable_model,
    variable_scope,
)
from collector.grafana.panels import (
    VERDICT_MAPPINGS,
    Dashboard,
    Panel,
    bars,
    last_value,
    layout,
    panel,
    row,
    stacked_bars,
    stat,
    table_rows,
    target,
    thresholds,
)


def model_dashboard() -> Dashboard:
    """One model: each metric across versions with CI bands, changes, trends and recent runs."""
    m = 'model="$model"'
    ms = f'{m},metric=~"$metric",scope="$scope"'
    verdict = panel(
        "table",
        "Verdict per version",
        "The verdict of every exported version of the model (collapse_watch_verdict == 1) and its baseline.",
        [
            target(f"collapse_watch_verdict{{{m}}} == 1", instant=True),
            target(f"collapse_watch_model_version_info{{{m}}}", instant=True),
        ],
        "none",
        transformations=table_rows(
            "Value #A",
            "Value #B",
            "model",
            order={"version": 0, "verdict": 1, "baseline_version": 2},
            merge=True,
        ),
    )
    suspected = panel(
        "stat",
        "Collapse suspected (latest version)",
        "1 (red) when the model's latest version has verdict collapse_suspected.",
        [target(f"collapse_watch_collapse_suspected{{{m}}}", instant=True)],
        "none",
        mappings=VERDICT_MAPPINGS,
        thresholds=thresholds((None, "green"), (1, "red")),
        options=stat(),
    )
    last_success = panel(
        "stat",
        "Schedule intervals since last success",
        "Time since the model's last successful collection run; orange after 2 and red after 3 schedule "
        "intervals (CollectorStale).",
        [
            target(
                f"(time() - collapse_watch_last_success_timestamp_seconds{{{m}}}) "
                f"/ collapse_watch_schedule_interval_seconds{{{m}}}",
                "intervals",
                instant=True,
            )
        ],
        "none",
        thresholds=thresholds((None, "green"), (2, "orange"), (3, "red")),
        options=last_value(),
    )
    values = panel(
        "timeseries",
        "$metric ($scope) per version, with 95% interval",
        "The metric's value for each version (solid) and its bootstrap 95% interval (dashed lower/upper), "
        "raw orientation: check the metric's direction in docs/metrics.md.",
        [
            target(f"collapse_watch_diversity{{{ms}}}", "{{version}}"),
            target(f"collapse_watch_diversity_ci_lower{{{ms}}}", "{{version}} lower"),
            target(f"collapse_watch_diversity_ci_upper{{{ms}}}", "{{version}} upper"),
        ],
        "none",
        custom={"drawStyle": "line", "lineWidth": 2, "fillOpacity": 0, "showPoints": "never"},
        overrides=[
            {
                "matcher": {"id": "byRegexp", "options": ".* (lower|upper)$"},
                "properties": [
                    {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [6, 4]}},
                    {"id": "custom.lineWidth", "value": 1},
                    {"id": "custom.hideFrom", "value": {"legend": True, "tooltip": False, "viz": False}},
                ],
            }
        ],
    )
    change_opts = bars()
    change_thr = thresholds((None, "red"), (-0.1, "orange"), (-0.02, "green"))
    vs_baseline = panel(
        "bargauge",
        "$metric ($scope): change vs baseline",
        "Change (rates: points; else relative) of each version vs the baseline, diversity orientation (negative = less diverse).",
        [
            target(
                f'collapse_watch_diversity_change{{{ms},reference="baseline"}}',
                "{{version}}",
                instant=True,
            )
        ],
        "percentunit",
        thresholds=change_thr,
        options=change_opts,
    )
    vs_previous = panel(
        "bargauge",
        "$metric ($scope): change vs previous version",
        "Change (rates: points; else relative) of each version vs the version before it, diversity orientation.",
        [
            target(
                f'collapse_watch_diversity_change{{{ms},reference="previous"}}',
                "{{version}}",
                instant=True,
            )
        ],
        "percentunit",
        thresholds=change_thr,
        options=change_opts,
    )
    table = panel(
        "table",
        "$metric ($scope): change vs baseline with interval and p-value",
        "Per version: change vs baseline, its 95% interval and p-value, and whether it counts as a "
        "significant decline (interval entirely below 0).",
        [
            target(f'collapse_watch_diversity_change{{{ms},reference="baseline"}}', instant=True),
            target(f'collapse_watch_diversity_change_ci_lower{{{ms},reference="baseline"}}', instant=True),
            target(f'collapse_watch_diversity_change_ci_upper{{{ms},reference="baseline"}}', instant=True),
            target(f'collapse_watch_diversity_change_p_value{{{ms},reference="baseline"}}', instant=True),
            target(f"collapse_watch_diversity_declined{{{ms}}}", instant=True),
        ],
        "percentunit",
        transformations=table_rows(
            "model",
            "metric",
            "scope",
            "reference",
            rename={
                "Value #A": "change",
                "Value #B": "ci lower",
                "Value #C": "ci upper",
                "Value #D": "p-value",
                "Value #E": "declined",
            },
            merge=True,
        ),
        overrides=[
            {
                "matcher": {"id": "byName", "options": "p-value"},
                "properties": [{"id": "unit", "value": "none"}],
            },
            {
                "matcher": {"id": "byName", "options": "declined"},
                "properties": [{"id": "unit", "value": "bool_yes_no"}],
            },
        ],
    )
    slopes = panel(
        "bargauge",
        "Trend slope per metric ($scope)",
        "Theil–Sen slope over the last K versions, relative to the first of them, per version, diversity orientation "
        "(negative = getting less diverse). The verdict's trend decision (collapse_watch_trend_declining) needs "
        "p < 0.05, a 5% loss over the window and both families.",
        [target(f'sort(collapse_watch_trend_slope{{{m},scope="$scope"}})', "{{metric}}", instant=True)],
        "percentunit",
        thresholds=thresholds((None, "red"), (0, "green")),
        options=change_opts,
    )
    trend_p = panel(
        "bargauge",
        "Trend p-value per metric ($scope)",
        "Mann–Kendall two-sided p-value of each metric's trend over the last K versions; "
        "below 0.05 is significant.",
        [target(f'sort(collapse_watch_trend_p_value{{{m},scope="$scope"}})', "{{metric}}", instant=True)],
        "none",
        thresholds=thresholds((None, "red"), (0.05, "green")),
        options=dict(change_opts, displayMode="basic"),
        min_=0,
    )
    runs = panel(
        "timeseries",
        "Runs by status",
        "Collection runs of this model per hour, by status (success / failed).",
        [target(f"sum by (status) (increase(collapse_watch_runs_total{{{m}}}[1h]))", "{{status}}")],
        "short",
        custom=stacked_bars(),
        min_=0,
    )
    duration = panel(
        "timeseries",
        "Last run duration",
        "Wall time of the model's latest collection run (sampling, embedding, scoring, storing).",
        [target(f"collapse_watch_last_run_duration_seconds{{{m}}}", "last run")],
        "s",
        min_=0,
    )
    rows: list[Sequence[tuple[Panel, int, int]]] = [
        [(suspected, 6, 6), (verdict, 12, 6), (last_success, 6, 6)],
        [(row("$metric", repeat="metric"), 24, 1)],
        [(values, 12, 8), (vs_baseline, 6, 8), (vs_previous, 6, 8)],
        [(table, 24, 6)],
        [(row("Trends and runs"), 24, 1)],
        [(slopes, 12, 8), (trend_p, 12, 8)],
        [(runs, 12, 7), (duration, 12, 7)],
    ]
    return dashboard(
        "model",
        "collapse-watch / model",
        "One model's diversity metrics across versions, changes vs baseline and previous version, "
        "trends, runs.",
        [variable_datasource(), variable_model(multi=False), variable_scope(), variable_metric()],
        layout(rows),
        annotations=[annotation_versions()],
    )
