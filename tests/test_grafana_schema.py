"""The shipped Grafana dashboards and provisioning files, checked against Grafana's published schema.

Grafana cannot run on the test machines, so the dashboards are validated against the models of
`grafana-foundation-sdk` (Grafana's own SDK, generated from the dashboard, panel and data query
schemas of a Grafana release; pinned in the `dev` extra to the Grafana 10.4 build, whose dashboard
schemaVersion is 39). The SDK's decoders are lenient (they drop unknown keys and check no types),
so strictness is added here: every decoded value is checked against the model's type annotations
(ints, strings, enums, nested models), and a dashboard re-encoded from the models must still hold
every key of the file, so a key the schema does not know is reported.
"""

from __future__ import annotations

import copy
import enum
import importlib.metadata
import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import encoder, plugins  # the dev extra pins it
from grafana_foundation_sdk.models import dashboard as gd

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "dashboards/grafana/dashboards").glob("*.json"))
PROVISIONING = ROOT / "dashboards/grafana/provisioning"
GRAFANA_RELEASE = "10.4.0"
SCHEMA_VERSION = 39  # the latest dashboard schemaVersion of Grafana 10.4

plugins.register_default_plugins()


def _encode(model: Any) -> Any:
    return json.loads(json.dumps(model, cls=encoder.JSONEncoder))


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "from_json") and hasattr(tp, "to_json")


def _check_type(value: Any, tp: Any, path: str, errors: list[str]) -> None:
    if tp is typing.Any or tp is object:
        if hasattr(value, "to_json"):  # e.g. panel options decoded by the panel plugin's model
            _check_model(value, path, errors)
        return
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        rest = [a for a in args if a is not type(None)]
        if value is None and len(rest) < len(args):
            return
        if len(rest) == 1:
            _check_type(value, rest[0], path, errors)
            return
        for arg in rest:
            if _is_model(arg) and isinstance(value, arg):
                _check_model(value, path, errors)
                return
        for arg in rest:
            sub: list[str] = []
            _check_type(value, arg, path, sub)
            if not sub:
                return
        errors.append(f"{path}: {value!r} matches none of {tp}")
        return
    if origin is list:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {value!r}")
            return
        (item,) = typing.get_args(tp) or (typing.Any,)
        for i, x in enumerate(value):
            _check_type(x, item, f"{path}[{i}]", errors)
        return
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object, got {value!r}")
            return
        args = typing.get_args(tp)
        for k, x in value.items():
            _check_type(x, args[1] if args else typing.Any, f"{path}.{k}", errors)
        return
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            errors.append(f"{path}: {value!r} is not one of {typing.get_args(tp)}")
        return
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [m.value for m in tp]
        if not (isinstance(value, tp) or value in allowed):
            errors.append(f"{path}: {value!r} is not one of {allowed}")
        return
    if tp is bool:
        if not isinstance(value, bool):
            errors.append(f"{path}: expected a boolean, got {value!r}")
        return
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: expected an integer, got {value!r}")
        return
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{path}: expected a number, got {value!r}")
        return
    if tp is str:
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {value!r}")
        return
    if _is_model(tp):
        if isinstance(value, dict):
            # the SDK keeps some nested objects undecoded (panel transformations): decode them here
            model = tp.from_json(value)
            _check_model(model, path, errors)
            _unknown_keys(value, _encode(model), path, errors)
            return
        if not isinstance(value, tp):
            errors.append(f"{path}: expected {tp.__name__}, got {value!r}")
            return
        _check_model(value, path, errors)
        return
    if isinstance(tp, type):  # e.g. the data query base class: check the decoded query's own model
        if not isinstance(value, tp):
            errors.append(f"{path}: expected {tp.__name__}, got {value!r}")
            return
        _check_model(value, path, errors)
        return
    raise AssertionError(f"{path}: no check for schema type {tp!r}")


def _check_model(model: Any, path: str, errors: list[str]) -> None:
    if not hasattr(model, "to_json"):
        return
    cls = type(model)
    hints = typing.get_type_hints(cls, vars(__import__(cls.__module__, fromlist=["_"])))
    for name, tp in hints.items():
        if hasattr(model, name):
            _check_type(getattr(model, name), tp, f"{path}.{name}", errors)


def _unknown_keys(given: Any, encoded: Any, path: str, errors: list[str]) -> None:
    if isinstance(given, dict):
        if not isinstance(encoded, dict):
            errors.append(f"{path}: an object where the schema has {encoded!r}")
            return
        for key, value in given.items():
            if key not in encoded:
                errors.append(f"{path}.{key}: not in the schema")
            else:
                _unknown_keys(value, encoded[key], f"{path}.{key}", errors)
    elif isinstance(given, list) and isinstance(encoded, list):
        for i, (a, b) in enumerate(zip(given, encoded, strict=False)):
            _unknown_keys(a, b, f"{path}[{i}]", errors)
    elif given != encoded:
        errors.append(f"{path}: {given!r} is read by the schema as {encoded!r}")


# Options of a Prometheus annotation query that the Prometheus data source plugin reads from the
# annotation itself (public/app/plugins/datasource/prometheus/annotations.ts: ``step`` becomes the
# query's interval, the others shape the events), so the dashboard kind does not list them.
PROMETHEUS_ANNOTATION_OPTIONS: dict[str, type] = {
    "step": str,
    "useValueForTime": bool,
    "titleFormat": str,
    "textFormat": str,
    "tagKeys": str,
}


def _prometheus_annotation_errors(dashboard: dict[str, Any]) -> tuple[set[str], list[str]]:
    """The plugin options of Prometheus annotations: the paths they take, and their type errors."""
    allowed: set[str] = set()
    errors: list[str] = []
    for i, note in enumerate(dashboard.get("annotations", {}).get("list", [])):
        if (note.get("datasource") or {}).get("type") != "prometheus":
            continue
        for key, tp in PROMETHEUS_ANNOTATION_OPTIONS.items():
            if key in note:
                path = f"dashboard.annotations.list[{i}].{key}"
                allowed.add(f"{path}: not in the schema")
                if not isinstance(note[key], tp):
                    errors.append(f"{path}: expected {tp.__name__}, got {note[key]!r}")
    return allowed, errors


def schema_errors(dashboard: dict[str, Any]) -> list[str]:
    """What Grafana's published dashboard schema (Grafana 10.4 kinds) rejects in this dashboard."""
    model = gd.Dashboard.from_json(dashboard)
    errors: list[str] = []
    _check_model(model, "dashboard", errors)
    _unknown_keys(dashboard, _encode(model), "dashboard", errors)
    plugin_options, plugin_errors = _prometheus_annotation_errors(dashboard)
    return [e for e in errors if e not in plugin_options] + plugin_errors


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_the_schema_is_grafana_10_4():
    assert importlib.metadata.version("grafana-foundation-sdk").endswith("!" + GRAFANA_RELEASE)
    assert DASHBOARDS, "no dashboards shipped"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_shipped_dashboard_validates_against_grafana_schema(path):
    dashboard = _load(path)
    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    panels = [p for row in dashboard["panels"] for p in [row, *row.get("panels", [])]]
    # every panel type is one the SDK has the panel schema of, so its options and custom
    # field config are checked too, and every target is a Prometheus query
    for panel in panels:
        if panel["type"] != "row":
            assert plugins.cogruntime.panelcfg_config(panel["type"]) is not None, panel["type"]
            assert panel["datasource"]["type"] == "prometheus"
    assert schema_errors(dashboard) == []


def _set(path: list[Any], value: Any):
    def mutate(d: dict[str, Any]) -> None:
        for key in path[:-1]:
            d = d[key]
        d[path[-1]] = value

    return mutate


BROKEN = {
    "unknown panel field": (_set(["panels", 0, "colour"], "red"), "panels[0].colour"),
    "gridPos as a string": (_set(["panels", 0, "gridPos", "h"], "6"), "grid_pos.h"),
    "unknown stat option": (_set(["panels", 0, "options", "textmode"], "value"), "textmode"),
    "stat colorMode not an enum": (_set(["panels", 0, "options", "colorMode"], "rainbow"), "color_mode"),
    "query instant as a string": (_set(["panels", 0, "targets", 0, "instant"], "yes"), "instant"),
    "unknown query field": (_set(["panels", 0, "targets", 0, "exp"], "up"), "targets[0].exp"),
    "thresholds mode": (
        _set(["panels", 0, "fieldConfig", "defaults", "thresholds", "mode"], "abs"),
        "thresholds.mode",
    ),
    "unit as a number": (_set(["panels", 0, "fieldConfig", "defaults", "unit"], 3), "unit"),
    "graphTooltip out of range": (_set(["graphTooltip"], 7), "graph_tooltip"),
    "unknown variable field": (_set(["templating", "list", 0, "definition"], "x"), "definition"),
    "transformation id as a number": (_set(["panels", 1, "transformations", 0, "id"], 1), ".id"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_dashboard_is_rejected(name):
    mutate, where = BROKEN[name]
    dashboard = copy.deepcopy(_load(ROOT / "dashboards/grafana/dashboards/collapse-watch-overview.json"))
    assert dashboard["panels"][0]["type"] == "stat" and dashboard["panels"][1]["transformations"]
    mutate(dashboard)
    errors = schema_errors(dashboard)
    assert errors and all(where in e for e in errors), errors


# Provisioning: the keys Grafana's provisioning docs list, with their types; required ones first.
DASHBOARD_PROVIDER = {
    "required": {"name": str, "type": str, "options": dict},
    "optional": {
        "orgId": int,
        "folder": str,
        "folderUid": str,
        "disableDeletion": bool,
        "allowUiUpdates": bool,
        "updateIntervalSeconds": int,
    },
}
DATASOURCE = {
    "required": {"name": str, "type": str, "access": str},
    "optional": {
        "uid": str,
        "orgId": int,
        "url": str,
        "user": str,
        "database": str,
        "basicAuth": bool,
        "basicAuthUser": str,
        "withCredentials": bool,
        "isDefault": bool,
        "jsonData": dict,
        "secureJsonData": dict,
        "version": int,
        "editable": bool,
    },
}


def _check_keys(item: dict[str, Any], spec: dict[str, dict[str, type]], where: str) -> list[str]:
    errors = [f"{where}: {key} missing" for key in spec["required"] if key not in item]
    for key, value in item.items():
        tp = spec["required"].get(key) or spec["optional"].get(key)
        if tp is None:
            errors.append(f"{where}: {key} is not a provisioning key")
        elif not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            errors.append(f"{where}: {key} should be {tp.__name__}, is {value!r}")
    return errors


def provisioning_errors(kind: str, doc: dict[str, Any]) -> list[str]:
    errors = [] if doc.get("apiVersion") == 1 else ["apiVersion must be 1"]
    if kind == "dashboards":
        for i, p in enumerate(doc.get("providers") or []):
            errors += _check_keys(p, DASHBOARD_PROVIDER, f"providers[{i}]")
            if p.get("type") != "file":
                errors.append(f"providers[{i}]: type must be file")
            options = p.get("options") or {}
            if not isinstance(options.get("path"), str):
                errors.append(f"providers[{i}]: options.path missing")
            unknown = set(options) - {"path", "foldersFromFilesStructure"}
            if unknown:
                errors.append(f"providers[{i}]: unknown options {sorted(unknown)}")
        if not doc.get("providers"):
            errors.append("no providers")
    else:
        for i, ds in enumerate(doc.get("datasources") or []):
            errors += _check_keys(ds, DATASOURCE, f"datasources[{i}]")
            if ds.get("access") not in ("proxy", "direct"):
                errors.append(f"datasources[{i}]: access must be proxy or direct")
        if not doc.get("datasources"):
            errors.append("no datasources")
    return errors


PROVISIONING_FILES = sorted(PROVISIONING.glob("*/*.y*ml"))


@pytest.mark.parametrize("path", PROVISIONING_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_provisioning_file_has_the_documented_fields(path):
    assert path.parent.name in ("dashboards", "datasources")
    assert provisioning_errors(path.parent.name, yaml.safe_load(path.read_text())) == []


def test_provisioning_covers_the_shipped_dashboards_and_their_datasource():
    providers = yaml.safe_load((PROVISIONING / "dashboards/collapse-watch.yml").read_text())["providers"]
    assert [p["options"]["path"] for p in providers] == ["/var/lib/grafana/dashboards/collapse-watch"]
    (ds,) = yaml.safe_load((PROVISIONING / "datasources/prometheus.yml").read_text())["datasources"]
    assert ds["type"] == "prometheus" and ds["url"].startswith("http")


def test_broken_provisioning_is_rejected():
    doc = yaml.safe_load((PROVISIONING / "dashboards/collapse-watch.yml").read_text())
    broken = copy.deepcopy(doc)
    del broken["providers"][0]["options"]["path"]
    broken["providers"][0]["disableDeletion"] = "yes"
    broken["providers"][0]["updateInterval"] = 60
    errors = provisioning_errors("dashboards", broken)
    assert len(errors) == 3, errors
    ds = yaml.safe_load((PROVISIONING / "datasources/prometheus.yml").read_text())
    ds["datasources"][0]["access"] = "server"
    del ds["datasources"][0]["name"]
    assert len(provisioning_errors("datasources", ds)) == 2


@pytest.mark.parametrize(
    ("key", "value", "where"),
    [("useValueForTime", "yes", "useValueForTime: expected bool"), ("titelFormat", "v", "titelFormat")],
)
def test_broken_annotation_is_rejected(key, value, where):
    dashboard = copy.deepcopy(_load(ROOT / "dashboards/grafana/dashboards/collapse-watch-model.json"))
    assert schema_errors(dashboard) == []
    dashboard["annotations"]["list"][0][key] = value
    errors = schema_errors(dashboard)
    assert errors and all(where in e for e in errors), errors
