"""A dashboard's frame: its template variables ($datasource, $model, $scope, $metric), the
version annotations and the common settings (uid, tags, links, refresh, time range)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collector.grafana.panels import DATASOURCE, SCHEMA_VERSION, TAGS, UIDS, Dashboard, Panel
from collector.vocabulary import HEADLINE_METRICS


def variable_datasource() -> dict[str, Any]:
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


def variable_model(*, multi: bool) -> dict[str, Any]:
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


def variable_scope() -> dict[str, Any]:
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


def variable_metric() -> dict[str, Any]:
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


def annotation_versions() -> dict[str, Any]:
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


def dashboard(
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
