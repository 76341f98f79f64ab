"""The parts every collapse-watch dashboard is built from: the data source, the dashboards' uids,
the latest-version join, the verdict colours, and the builders of queries, thresholds, panels, rows
and their grid layout (plain dicts, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collector.vocabulary import STATUSES

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

# A verdict cell's colour, per status of collector.vocabulary.STATUSES in its order.
STATUS_COLOURS = ("green", "orange", "red", "blue")

VERDICT_MAPPINGS: list[dict[str, Any]] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "ok", "color": "green", "index": 0},
            "1": {"text": "collapse suspected", "color": "red", "index": 1},
        },
    }
]


def target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> dict[str, Any]:
    """One Prometheus query of a panel."""
    query: dict[str, Any] = {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "refId": ref,
        "range": not instant,
        "instant": instant,
    }
    if instant:
        query["format"] = "table"
    return query


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def panel(
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
    """A panel without id or position (``layout`` assigns those)."""
    defaults: dict[str, Any] = {"unit": unit}
    if thresholds is not None:
        defaults["thresholds"] = thresholds
    if mappings is not None:
        defaults["mappings"] = mappings
    if custom is not None:
        defaults["custom"] = custom
    if min_ is not None:
        defaults["min"] = min_
    built: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }
    if transformations:
        built["transformations"] = transformations
    return built


def row(title: str, repeat: str | None = None) -> Panel:
    built: Panel = {"type": "row", "title": title, "collapsed": False, "panels": []}
    if repeat:
        built["repeat"] = repeat
    return built


def layout(rows: Sequence[Sequence[tuple[Panel, int, int]]]) -> list[Panel]:
    """Assign ids and grid positions: each inner sequence is one line of (panel, width, height)."""
    panels: list[Panel] = []
    y = 0
    next_id = 1
    for line in rows:
        x = 0
        height = 0
        for item, w, h in line:
            panels.append(dict(item, id=next_id, gridPos={"x": x, "y": y, "w": w, "h": h}))
            next_id += 1
            x += w
            height = max(height, h)
        y += height
    return panels


def last_value(**options: Any) -> dict[str, Any]:
    """A panel's options that show each series' last non-null value."""
    return {**options, "reduceOptions": {"calcs": ["lastNotNull"]}}


def bars() -> dict[str, Any]:
    """A bar gauge's options: horizontal bars of each series' last value."""
    return last_value(orientation="horizontal", displayMode="basic")


def stacked_bars() -> dict[str, Any]:
    """A time series' field config that draws each interval's counts as stacked bars."""
    return {"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}}


def stat(text_mode: str | None = None) -> dict[str, Any]:
    """A stat panel's options: the last value on a coloured background (``text_mode``: Grafana's
    ``textMode``, e.g. ``value_and_name``; None: its default)."""
    return last_value(colorMode="background", **({"textMode": text_mode} if text_mode else {}))


# Labels Prometheus puts on every row of an instant-query table, hidden in every table panel.
SERIES_LABELS = ("Time", "__name__", "job", "instance")


def table_rows(
    *hidden: str,
    order: dict[str, int] | None = None,
    rename: dict[str, str] | None = None,
    sort_by: str = "version",
    descending: bool = True,
    merge: bool = False,
) -> list[dict[str, Any]]:
    """A table panel's transformations: (``merge``: one row per label set over all queries), hide
    ``SERIES_LABELS`` and ``hidden``, put columns in ``order``, ``rename`` them, sort by one column."""
    options: dict[str, Any] = {"excludeByName": dict.fromkeys((*SERIES_LABELS, *hidden), True)}
    if order is not None:
        options["indexByName"] = order
    if rename is not None:
        options["renameByName"] = rename
    steps: list[dict[str, Any]] = [{"id": "merge", "options": {}}] if merge else []
    steps.append({"id": "organize", "options": options})
    steps.append({"id": "sortBy", "options": {"sort": [{"field": sort_by, "desc": descending}]}})
    return steps


def status_mappings() -> list[dict[str, Any]]:
    """Value mappings that colour a verdict column (``STATUS_COLOURS``), one entry per status."""
    colours = zip(STATUSES, STATUS_COLOURS, strict=True)
    return [{"type": "value", "options": {s: {"color": c, "index": i} for i, (s, c) in enumerate(colours)}}]
