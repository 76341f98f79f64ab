"""Grafana dashboards for collapse-watch, built as plain dicts (pure: no I/O outside ``main``).

Three dashboards, with stable uids so links and provisioning survive regeneration:

* ``collapse-watch-overview``: the verdict of every model's latest version, each headline metric's
  change vs baseline (worst first), the worst declines over all metrics;
* ``collapse-watch-model``: one model, each selected metric across versions with its 95% interval,
  the change vs baseline and vs the previous version, trend slopes, recent runs;
* ``collapse-watch-health``: the collector itself: runs by status, failures, samples, sample errors,
  age of the last success, run-duration quantiles, exporter health.

Every metric name used here is part of the contract in ``docs/metrics.md``; changes and
slopes are in diversity orientation (negative = less diverse). Regenerate the committed JSON with::

    python -m collector.grafana.dashboards --out dashboards/grafana/dashboards
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from collector.exporter import HEADLINE_METRICS

Panel = dict[str, Any]
Dashboard = dict[str, Any]

DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
UIDS: dict[str, str] = {
    "overview": "collapse-watch-overview",
    "model": "collapse-watch-model",
    "health": "collapse-watch-health",
}
TAGS = ["collapse-watch"]
SCHEMA_VERSION = 39

# The latest version of each model, as {model, version} series of value 1 (a join target).
LATEST = "(collapse_watch_version_ordinal == on(model) group_left() collapse_watch_latest_version_ordinal)"

# From a row of a table with a ``model`` column to that model's history (the model dashboard).
MODEL_LINK: dict[str, Any] = {
    "title": "History of ${__data.fields.model}",
    "url": f"/d/{UIDS['model']}/collapse-watch-model?var-model=${{__data.fields.model}}&${{__url_time_range}}",
}

VERDICT_MAPPINGS: list[dict[str, Any]] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "ok", "color": "green", "index": 0},
            "1": {"text": "collapse suspected", "color": "red", "index": 1},
        },
    }
]


def _target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> dict[str, Any]:
    """One Prometheus query of a panel."""
    target: dict[str, Any] = {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "refId": ref,
        "range": not instant,
        "instant": instant,
    }
    if instant:
        target["format"] = "table"
    return target


def _thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def _panel(
    kind: str,
    title: str,
    description: str,
    targets: Sequence[dict[str, Any]],
    unit: str,
    *,
    thresholds: dict[str, Any] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    options: dict[str, Any] | None = None,
    custom: dict[str, Any] | None = None,
    overrides: list[dict[str, Any]] | None = None,
    transformations: list[dict[str, Any]] | None = None,
    min_: float | None = None,
) -> Panel:
    """A panel without id or position (``_layout`` assigns those)."""
    defaults: dict[str, Any] = {"unit": unit}
    if thresholds is not None:
        defaults["thresholds"] = thresholds
    if mappings is not None:
        defaults["mappings"] = mappings
    if custom is not None:
        defaults["custom"] = custom
    if min_ is not None:
        defaults["min"] = min_
    panel: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }
    if transformations:
        panel["transformations"] = transformations
    return panel


def _row(title: str, repeat: str | None = None) -> Panel:
    row: Panel = {"type": "row", "title": title, "collapsed": False, "panels": []}
    if repeat:
        row["repeat"] = repeat
    return row


def _layout(rows: Sequence[Sequence[tuple[Panel, int, int]]]) -> list[Panel]:
    """Assign ids and grid positions: each inner sequence is one line of (panel, width, height)."""
    panels: list[Panel] = []
    y = 0
    next_id = 1
    for line in rows:
        x = 0
        height = 0
        for panel, w, h in line:
            panel = dict(panel, id=next_id, gridPos={"x": x, "y": y, "w": w, "h": h})
            next_id += 1
            panels.append(panel)
            x += w
            height = max(height, h)
        y += height
    return panels


def _variable_datasource() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
    }


def _variable_model(*, multi: bool) -> dict[str, Any]:
    return {
        "name": "model",
        "label": "Model",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": "label_values(collapse_watch_diversity, model)", "refId": "model"},
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "current": {},
        "hide": 0,
    }


def _variable_scope() -> dict[str, Any]:
    return {
        "name": "scope",
        "label": "Scope",
        "type": "custom",
        "query": "across,within",
        "current": {"text": "across", "value": "across"},
        "options": [
            {"text": "across", "value": "across", "selected": True},
            {"text": "within", "value": "within", "selected": False},
        ],
        "multi": False,
        "includeAll": False,
        "hide": 0,
    }


def _variable_metric() -> dict[str, Any]:
    # the metrics with every per-metric series (intervals, p-values): the headline metrics at the
    # default metrics_detail (summary), all of them at full
    query = 'label_values(collapse_watch_diversity_ci_lower{model="$model"}, metric)'
    headline = list(HEADLINE_METRICS)
    return {
        "name": "metric",
        "label": "Metric",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": "metric"},
        "refresh": 2,
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "current": {"text": headline, "value": headline},
        "hide": 0,
    }


def _annotation_versions() -> dict[str, Any]:
    """A marker where each version of ``$model`` was first seen (its series' value is the time)."""
    return {
        "name": "Versions",
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": "purple",
        "expr": 'collapse_watch_version_first_seen_timestamp_seconds{model="$model"} * 1000',
        "useValueForTime": True,
        "step": "1m",
        "titleFormat": "version {{version}}",
        "textFormat": "{{model}} {{version}} first seen",
        "tagKeys": "model,version",
    }


def _dashboard(
    key: str,
    title: str,
    description: str,
    variables: list[dict[str, Any]],
    panels: list[Panel],
    annotations: Sequence[dict[str, Any]] = (),
) -> Dashboard:
    return {
        "uid": UIDS[key],
        "title": title,
        "description": description,
        "tags": TAGS,
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-7d", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": list(annotations)},
        "links": [
            {
                "type": "dashboards",
                "title": "collapse-watch",
                "tags": TAGS,
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "panels": panels,
    }


def overview_dashboard() -> Dashboard:
    """Every model at a glance: verdicts, headline changes vs baseline, worst declines first."""
    sel = 'model=~"$model"'
    verdict_stat = _panel(
        "stat",
        "Collapse suspected (latest version)",
        "1 (red) when the latest version of the model has verdict collapse_suspected "
        "(collapse_watch_collapse_suspected); alert CollapseWatchCollapseSuspected fires after 5 minutes.",
        [_target(f"collapse_watch_collapse_suspected{{{sel}}}", "{{model}}", instant=True)],
        "none",
        mappings=VERDICT_MAPPINGS,
        thresholds=_thresholds((None, "green"), (1, "red")),
        options={
            "colorMode": "background",
            "textMode": "value_and_name",
            "reduceOptions": {"calcs": ["lastNotNull"]},
        },
    )
    verdict_table = _panel(
        "table",
        "Verdict per model and version",
        "The verdict (ok / watch / collapse_suspected / inconclusive: too little data to decide) of every "
        "exported version, latest first per model. "
        "Source: collapse_watch_verdict == 1.",
        [_target(f"collapse_watch_verdict{{{sel}}} == 1", instant=True)],
        "none",
        transformations=[
            {
                "id": "organize",
                "options": {
                    "excludeByName": {
                        "Time": True,
                        "Value": True,
                        "__name__": True,
                        "job": True,
                        "instance": True,
                    },
                    "indexByName": {"model": 0, "version": 1, "verdict": 2},
                },
            },
            {"id": "sortBy", "options": {"sort": [{"field": "version", "desc": True}]}},
        ],
        custom={"cellOptions": {"type": "auto"}},
        overrides=[
            {
                "matcher": {"id": "byName", "options": "model"},
                "properties": [{"id": "links", "value": [MODEL_LINK]}],
            },
            {
                "matcher": {"id": "byName", "options": "verdict"},
                "properties": [
                    {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    {
                        "id": "mappings",
                        "value": [
                            {
                                "type": "value",
                                "options": {
                                    "ok": {"color": "green", "index": 0},
                                    "watch": {"color": "orange", "index": 1},
                                    "collapse_suspected": {"color": "red", "index": 2},
                                    "inconclusive": {"color": "blue", "index": 3},
                                },
                            }
                        ],
                    },
                ],
            },
        ],
    )
    declined_count = _panel(
        "bargauge",
        "Headline metrics declined vs baseline (latest version)",
        "How many of the five headline metrics of each model's latest version are significantly less diverse "
        "than the baseline, as the verdict counted them (collapse_watch_diversity_declined: interval below 0, "
        "p < alpha and at least a 5% change; either scope). The alerts read the verdict itself.",
        [
            _target(
                "sort_desc(count by (model) (max by (model, version, metric) ("
                f'collapse_watch_diversity_declined{{{sel},metric=~"{"|".join(HEADLINE_METRICS)}"}} '
                f"and on(model, version) {LATEST}) == 1))",
                "{{model}}",
                instant=True,
            )
        ],
        "none",
        thresholds=_thresholds((None, "green"), (1, "orange"), (2, "red")),
        options={
            "orientation": "horizontal",
            "displayMode": "basic",
            "reduceOptions": {"calcs": ["lastNotNull"]},
        },
        min_=0,
    )
    change_panels: list[tuple[Panel, int, int]] = []
    for metric in HEADLINE_METRICS:
        change_panels.append(
            (
                _panel(
                    "bargauge",
                    f"{metric}: change vs baseline ($scope)",
                    f"Change (rates: points; else relative) of {metric} in the latest version vs the model's baseline, in "
                    "diversity orientation (negative = less diverse, whatever the metric's own direction); "
                    "worst first.",
                    [
                        _target(
                            f'sort(collapse_watch_diversity_change{{{sel},metric="{metric}",'
                            f'scope="$scope",reference="baseline"}} and on(model, version) {LATEST})',
                            "{{model}} {{version}}",
                            instant=True,
                        )
                    ],
                    "percentunit",
                    thresholds=_thresholds((None, "red"), (-0.1, "orange"), (-0.02, "green")),
                    options={
                        "orientation": "horizontal",
                        "displayMode": "basic",
                        "reduceOptions": {"calcs": ["lastNotNull"]},
                    },
                ),
                8,
                7,
            )
        )
    worst = _panel(
        "table",
        "Worst declines vs baseline (all metrics, latest versions)",
        "The 15 largest declines vs baseline over every metric and scope of the latest versions, most "
        "negative (least diverse) first; diversity orientation, so every metric reads the same way.",
        [
            _target(
                f'bottomk(15, collapse_watch_diversity_change{{{sel},reference="baseline"}} '
                f"and on(model, version) {LATEST})",
                instant=True,
            )
        ],
        "percentunit",
        transformations=[
            {
                "id": "organize",
                "options": {
                    "excludeByName": {
                        "Time": True,
                        "__name__": True,
                        "job": True,
                        "instance": True,
                        "reference": True,
                    },
                    "indexByName": {"model": 0, "version": 1, "metric": 2, "scope": 3, "Value": 4},
                    "renameByName": {"Value": "change vs baseline"},
                },
            },
            {"id": "sortBy", "options": {"sort": [{"field": "change vs baseline", "desc": False}]}},
        ],
        thresholds=_thresholds((None, "red"), (-0.1, "orange"), (-0.02, "green")),
        custom={"cellOptions": {"type": "color-text"}},
    )
    panels = _layout(
        [
            [(verdict_stat, 8, 6), (verdict_table, 10, 6), (declined_count, 6, 6)],
            change_panels[:3],
            [*change_panels[3:], (worst, 8, 7)],
        ]
    )
    return _dashboard(
        "overview",
        "collapse-watch / overview",
        "Verdicts and headline diversity changes of every watched model.",
        [_variable_datasource(), _variable_model(multi=True), _variable_scope()],
        panels,
    )


def model_dashboard() -> Dashboard:
    """One model: each metric across versions with CI bands, changes, trends and recent runs."""
    m = 'model="$model"'
    ms = f'{m},metric=~"$metric",scope="$scope"'
    verdict = _panel(
        "table",
        "Verdict per version",
        "The verdict of every exported version of the model (collapse_watch_verdict == 1) and its baseline.",
        [
            _target(f"collapse_watch_verdict{{{m}}} == 1", instant=True),
            _target(f"collapse_watch_model_version_info{{{m}}}", instant=True),
        ],
        "none",
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {
                        "Time": True,
                        "Value #A": True,
                        "Value #B": True,
                        "__name__": True,
                        "job": True,
                        "instance": True,
                        "model": True,
                    },
                    "indexByName": {"version": 0, "verdict": 1, "baseline_version": 2},
                },
            },
            {"id": "sortBy", "options": {"sort": [{"field": "version", "desc": True}]}},
        ],
    )
    suspected = _panel(
        "stat",
        "Collapse suspected (latest version)",
        "1 (red) when the model's latest version has verdict collapse_suspected.",
        [_target(f"collapse_watch_collapse_suspected{{{m}}}", instant=True)],
        "none",
        mappings=VERDICT_MAPPINGS,
        thresholds=_thresholds((None, "green"), (1, "red")),
        options={"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}},
    )
    last_success = _panel(
        "stat",
        "Schedule intervals since last success",
        "Time since the model's last successful collection run; orange after 2 and red after 3 schedule "
        "intervals (CollectorStale).",
        [
            _target(
                f"(time() - collapse_watch_last_success_timestamp_seconds{{{m}}}) "
                f"/ collapse_watch_schedule_interval_seconds{{{m}}}",
                "intervals",
                instant=True,
            )
        ],
        "none",
        thresholds=_thresholds((None, "green"), (2, "orange"), (3, "red")),
        options={"reduceOptions": {"calcs": ["lastNotNull"]}},
    )
    values = _panel(
        "timeseries",
        "$metric ($scope) per version, with 95% interval",
        "The metric's value for each version (solid) and its bootstrap 95% interval (dashed lower/upper), "
        "raw orientation: check the metric's direction in docs/metrics.md.",
        [
            _target(f"collapse_watch_diversity{{{ms}}}", "{{version}}"),
            _target(f"collapse_watch_diversity_ci_lower{{{ms}}}", "{{version}} lower"),
            _target(f"collapse_watch_diversity_ci_upper{{{ms}}}", "{{version}} upper"),
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
    change_opts = {
        "orientation": "horizontal",
        "displayMode": "basic",
        "reduceOptions": {"calcs": ["lastNotNull"]},
    }
    change_thr = _thresholds((None, "red"), (-0.1, "orange"), (-0.02, "green"))
    vs_baseline = _panel(
        "bargauge",
        "$metric ($scope): change vs baseline",
        "Change (rates: points; else relative) of each version vs the baseline, diversity orientation (negative = less diverse).",
        [
            _target(
                f'collapse_watch_diversity_change{{{ms},reference="baseline"}}',
                "{{version}}",
                instant=True,
            )
        ],
        "percentunit",
        thresholds=change_thr,
        options=change_opts,
    )
    vs_previous = _panel(
        "bargauge",
        "$metric ($scope): change vs previous version",
        "Change (rates: points; else relative) of each version vs the version before it, diversity orientation.",
        [
            _target(
                f'collapse_watch_diversity_change{{{ms},reference="previous"}}',
                "{{version}}",
                instant=True,
            )
        ],
        "percentunit",
        thresholds=change_thr,
        options=change_opts,
    )
    table = _panel(
        "table",
        "$metric ($scope): change vs baseline with interval and p-value",
        "Per version: change vs baseline, its 95% interval and p-value, and whether it counts as a "
        "significant decline (interval entirely below 0).",
        [
            _target(f'collapse_watch_diversity_change{{{ms},reference="baseline"}}', instant=True),
            _target(f'collapse_watch_diversity_change_ci_lower{{{ms},reference="baseline"}}', instant=True),
            _target(f'collapse_watch_diversity_change_ci_upper{{{ms},reference="baseline"}}', instant=True),
            _target(f'collapse_watch_diversity_change_p_value{{{ms},reference="baseline"}}', instant=True),
            _target(f"collapse_watch_diversity_declined{{{ms}}}", instant=True),
        ],
        "percentunit",
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {
                        "Time": True,
                        "__name__": True,
                        "job": True,
                        "instance": True,
                        "model": True,
                        "metric": True,
                        "scope": True,
                        "reference": True,
                    },
                    "renameByName": {
                        "Value #A": "change",
                        "Value #B": "ci lower",
                        "Value #C": "ci upper",
                        "Value #D": "p-value",
                        "Value #E": "declined",
                    },
                },
            },
            {"id": "sortBy", "options": {"sort": [{"field": "version", "desc": True}]}},
        ],
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
    slopes = _panel(
        "bargauge",
        "Trend slope per metric ($scope)",
        "Theil–Sen slope over the last K versions, relative to the first of them, per version, diversity orientation "
        "(negative = getting less diverse). The verdict's trend decision (collapse_watch_trend_declining) needs "
        "p < 0.05, a 5% loss over the window and both families.",
        [_target(f'sort(collapse_watch_trend_slope{{{m},scope="$scope"}})', "{{metric}}", instant=True)],
        "percentunit",
        thresholds=_thresholds((None, "red"), (0, "green")),
        options=change_opts,
    )
    trend_p = _panel(
        "bargauge",
        "Trend p-value per metric ($scope)",
        "Mann–Kendall two-sided p-value of each metric's trend over the last K versions; "
        "below 0.05 is significant.",
        [_target(f'sort(collapse_watch_trend_p_value{{{m},scope="$scope"}})', "{{metric}}", instant=True)],
        "none",
        thresholds=_thresholds((None, "red"), (0.05, "green")),
        options=dict(change_opts, displayMode="basic"),
        min_=0,
    )
    runs = _panel(
        "timeseries",
        "Runs by status",
        "Collection runs of this model per hour, by status (success / failed).",
        [_target(f"sum by (status) (increase(collapse_watch_runs_total{{{m}}}[1h]))", "{{status}}")],
        "short",
        custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}},
        min_=0,
    )
    duration = _panel(
        "timeseries",
        "Last run duration",
        "Wall time of the model's latest collection run (sampling, embedding, scoring, storing).",
        [_target(f"collapse_watch_last_run_duration_seconds{{{m}}}", "last run")],
        "s",
        min_=0,
    )
    rows: list[Sequence[tuple[Panel, int, int]]] = [
        [(suspected, 6, 6), (verdict, 12, 6), (last_success, 6, 6)],
        [(_row("$metric", repeat="metric"), 24, 1)],
        [(values, 12, 8), (vs_baseline, 6, 8), (vs_previous, 6, 8)],
        [(table, 24, 6)],
        [(_row("Trends and runs"), 24, 1)],
        [(slopes, 12, 8), (trend_p, 12, 8)],
        [(runs, 12, 7), (duration, 12, 7)],
    ]
    return _dashboard(
        "model",
        "collapse-watch / model",
        "One model's diversity metrics across versions, changes vs baseline and previous version, "
        "trends, runs.",
        [_variable_datasource(), _variable_model(multi=False), _variable_scope(), _variable_metric()],
        _layout(rows),
        annotations=[_annotation_versions()],
    )


def health_dashboard() -> Dashboard:
    """The collector itself: runs, failures, samples, staleness, durations, exporter health."""
    sel = 'model=~"$model"'
    runs = _panel(
        "timeseries",
        "Runs per hour by status",
        "Collection runs per model and status (success / failed) over the last hour.",
        [
            _target(
                f"sum by (model, status) (increase(collapse_watch_runs_total{{{sel}}}[1h]))",
                "{{model}} {{status}}",
            )
        ],
        "short",
        custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}},
        min_=0,
    )
    failed = _panel(
        "timeseries",
        "Failed-run ratio (6h)",
        "Share of runs that failed over 6 hours; CollapseWatchRunsFailing fires above 50%.",
        [
            _target(
                f'sum by (model) (increase(collapse_watch_runs_total{{{sel},status="failed"}}[6h])) '
                f"/ (sum by (model) (increase(collapse_watch_runs_total{{{sel}}}[6h])) > 0)",
                "{{model}}",
            )
        ],
        "percentunit",
        thresholds=_thresholds((None, "green"), (0.5, "red")),
        custom={"thresholdsStyle": {"mode": "line"}},
        min_=0,
    )
    samples = _panel(
        "timeseries",
        "Samples and sample errors per hour",
        "Model outputs sampled per hour, and sampling requests that failed after retries.",
        [
            _target(
                f"sum by (model) (increase(collapse_watch_samples_total{{{sel}}}[1h]))", "{{model}} samples"
            ),
            _target(
                f"sum by (model) (increase(collapse_watch_sample_errors_total{{{sel}}}[1h]))",
                "{{model}} errors",
            ),
        ],
        "short",
        min_=0,
    )
    error_ratio = _panel(
        "timeseries",
        "Sample error ratio (1h)",
        "Failed sampling requests per request attempted over the last hour; "
        "CollapseWatchSampleErrorsHigh fires above 20%.",
        [
            _target(
                f"sum by (model) (increase(collapse_watch_sample_errors_total{{{sel}}}[1h])) / "
                f"((sum by (model) (increase(collapse_watch_samples_total{{{sel}}}[1h])) + "
                f"sum by (model) (increase(collapse_watch_sample_errors_total{{{sel}}}[1h]))) > 0)",
                "{{model}}",
            )
        ],
        "percentunit",
        thresholds=_thresholds((None, "green"), (0.2, "red")),
        custom={"thresholdsStyle": {"mode": "line"}},
        min_=0,
    )
    age = _panel(
        "bargauge",
        "Time since last successful run",
        "Age of each model's last successful run. Compare with the schedule interval: CollectorStale fires "
        "after 3 intervals.",
        [
            _target(
                f"sort_desc(time() - collapse_watch_last_success_timestamp_seconds{{{sel}}})",
                "{{model}}",
                instant=True,
            )
        ],
        "s",
        options={
            "orientation": "horizontal",
            "displayMode": "basic",
            "reduceOptions": {"calcs": ["lastNotNull"]},
        },
        thresholds=_thresholds((None, "green"), (3600, "orange"), (4 * 3600, "red")),
        min_=0,
    )
    age_intervals = _panel(
        "bargauge",
        "Schedule intervals since last success",
        "Age of the last successful run divided by the model's schedule interval; 3 or more is stale.",
        [
            _target(
                f"sort_desc((time() - collapse_watch_last_success_timestamp_seconds{{{sel}}}) "
                f"/ collapse_watch_schedule_interval_seconds{{{sel}}})",
                "{{model}}",
                instant=True,
            )
        ],
        "none",
        options={
            "orientation": "horizontal",
            "displayMode": "basic",
            "reduceOptions": {"calcs": ["lastNotNull"]},
        },
        thresholds=_thresholds((None, "green"), (2, "orange"), (3, "red")),
        min_=0,
    )
    quantiles = _panel(
        "timeseries",
        "Run duration quantiles (6h)",
        "Median, 90th and 99th percentile of collection-run wall time over 6 hours, from the "
        "collapse_watch_run_duration_seconds histogram.",
        [
            _target(
                f"histogram_quantile({q}, sum by (model, le) "
                f"(rate(collapse_watch_run_duration_seconds_bucket{{{sel}}}[6h])))",
                f"{{{{model}}}} p{int(q * 100)}",
            )
            for q in (0.5, 0.9, 0.99)
        ],
        "s",
        min_=0,
    )
    last_duration = _panel(
        "timeseries",
        "Last run duration",
        "Wall time of each model's latest run.",
        [_target(f"collapse_watch_last_run_duration_seconds{{{sel}}}", "{{model}}")],
        "s",
        min_=0,
    )
    up = _panel(
        "stat",
        "Exporter up / store readable",
        "up: Prometheus can scrape the collector (CollectorDown). store: the exporter could read its "
        "database during the scrape (collapse_watch_up, CollapseWatchStoreUnavailable).",
        [
            _target('up{job="collapse-watch"}', "up {{instance}}", instant=True),
            _target("collapse_watch_up", "store {{instance}}", instant=True),
        ],
        "none",
        mappings=[
            {
                "type": "value",
                "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}},
            }
        ],
        thresholds=_thresholds((None, "red"), (1, "green")),
        options={
            "colorMode": "background",
            "textMode": "value_and_name",
            "reduceOptions": {"calcs": ["lastNotNull"]},
        },
    )
    scrape = _panel(
        "timeseries",
        "Exporter scrape duration",
        "Time the exporter spent reading the store per scrape; it should stay well below the scrape timeout.",
        [_target("collapse_watch_scrape_duration_seconds", "{{instance}}")],
        "s",
        min_=0,
    )
    rows: list[Sequence[tuple[Panel, int, int]]] = [
        [(up, 8, 5), (age, 8, 5), (age_intervals, 8, 5)],
        [(runs, 12, 8), (failed, 12, 8)],
        [(samples, 12, 8), (error_ratio, 12, 8)],
        [(quantiles, 12, 8), (last_duration, 6, 8), (scrape, 6, 8)],
    ]
    return _dashboard(
        "health",
        "collapse-watch / collector health",
        "Is the collector running, succeeding and fresh?",
        [_variable_datasource(), _variable_model(multi=True)],
        _layout(rows),
    )


def all_dashboards() -> dict[str, Dashboard]:
    """Every dashboard keyed by its uid."""
    return {d["uid"]: d for d in (overview_dashboard(), model_dashboard(), health_dashboard())}


def iter_panels(dashboard: Dashboard) -> Iterator[Panel]:
    """Every panel of a dashboard, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def render(dashboard: Dashboard) -> str:
    """The dashboard's committed JSON text (stable key order, trailing newline)."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_dashboards(out: Path) -> list[Path]:
    """Write ``<uid>.json`` for every dashboard into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for uid, dashboard in all_dashboards().items():
        path = out / f"{uid}.json"
        path.write_text(render(dashboard), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m collector.grafana.dashboards --out DIR``: write the dashboards' JSON files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dashboards/grafana/dashboards"))
    args = parser.parse_args(argv)
    for path in write_dashboards(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
