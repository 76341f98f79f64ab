"""The ops assets of collapse-watch: Prometheus rules and config, Alertmanager, Grafana, docker-compose.

Prometheus and Alertmanager are checked with their real tools (``promtool``, ``amtool`` from the
Debian packages ``prometheus`` and ``prometheus-alertmanager``); those tests skip only when the tool is
absent. Grafana cannot be installed here, so the dashboards are checked structurally and against the
metric-name contract (``docs/metrics.md``), and ``push_dashboards`` is exercised against a
small loopback HTTP server that records the requests a Grafana would receive.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from ops_config import render_alertmanager_config, render_prometheus_config

from collector.grafana import dashboards as gd
from collector.grafana.push import push_dashboards

REPO = Path(__file__).resolve().parents[1]
PROM = REPO / "dashboards" / "prometheus"
RULES = PROM / "rules" / "collapse-watch.rules.yml"
RULE_TESTS = sorted((PROM / "tests").glob("*.test.yml"))
ALERTMANAGER = REPO / "dashboards" / "alertmanager" / "alertmanager.yml"
GRAFANA = REPO / "dashboards" / "grafana"
CONTRACT = REPO / "docs" / "metrics.md"
RUNBOOK = REPO / "docs" / "runbook.md"
COMPOSE = REPO / "docker-compose.yml"

PROMQL_KEYWORDS = {"up"}  # Prometheus' own series that rules and dashboards may use


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)")
    return path


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def _contract() -> tuple[set[str], set[str], set[str]]:
    """(exported metric names, histogram names, recording-rule names) from the contract's tables."""
    text = CONTRACT.read_text()
    exported: set[str] = set()
    histograms: set[str] = set()
    records: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"\| `([a-z_:0-9]+)` \|", line)
        if not m:
            continue
        name = m.group(1)
        if ":" in name:
            records.add(name)
        elif name.startswith("collapse_watch_"):
            exported.add(name)
            if "| histogram |" in line:
                histograms.add(name)
    return exported, histograms, records


def _names_in(expr: str) -> set[str]:
    """Series names an expression selects: collapse_watch_* and recording-rule names (level:name:op)."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values are not names
    names = set(re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", expr))
    names |= set(re.findall(r"(?<![:\w])collapse_watch_[a-z0-9_]+\b(?!:)", expr))
    return names


def _allowed(names: set[str]) -> set[str]:
    exported, histograms, records = _contract()
    ok = set(exported) | records
    for h in histograms:
        ok |= {f"{h}_bucket", f"{h}_sum", f"{h}_count"}
    return names - ok


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


# --- the contract ----------------------------------------------------------------------------


def test_contract_lists_the_suggested_families() -> None:
    exported, histograms, records = _contract()
    for name in (
        "collapse_watch_diversity",
        "collapse_watch_diversity_change",
        "collapse_watch_diversity_declined",
        "collapse_watch_trend_slope",
        "collapse_watch_verdict",
        "collapse_watch_collapse_suspected",
        "collapse_watch_runs_total",
        "collapse_watch_last_success_timestamp_seconds",
        "collapse_watch_schedule_interval_seconds",
        "collapse_watch_up",
    ):
        assert name in exported
    assert histograms == {"collapse_watch_run_duration_seconds"}
    assert {r["record"] for r in _rules() if "record" in r} == records
    for name in exported:  # Prometheus naming: counters end in _total, nothing else does
        line = next(ln for ln in CONTRACT.read_text().splitlines() if ln.startswith(f"| `{name}` |"))
        assert ("| counter |" in line) == name.endswith("_total"), name


def test_names_in_detects_names_outside_the_contract() -> None:
    assert _allowed(_names_in('collapse_watch_diversty{metric="collapse_watch_x"}')) == {
        "collapse_watch_diversty"
    }
    assert _allowed(_names_in("rate(collapse_watch_run_duration_seconds_bucket[5m])")) == set()


# --- Prometheus ------------------------------------------------------------------------------


def test_promtool_check_config_and_rules() -> None:
    promtool = _tool("promtool")
    res = _run(promtool, "check", "config", str(PROM / "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 rule files found" in res.stdout + res.stderr  # the rules glob resolves next to the config
    res = _run(promtool, "check", "rules", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = _tool("promtool")
    assert RULE_TESTS
    res = _run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    ("original", "mutant"),
    [
        ("expr: collapse_watch_collapse_suspected == 1", "expr: collapse_watch_collapse_suspected >= 0"),
        ("expr: collapse_watch_diversity_watch == 1", "expr: collapse_watch_diversity_watch >= 0"),
        (
            '        for: 5m\n        labels:\n          severity: warning\n        annotations:\n          summary: "{{ $labels.model }} {{ $labels.version }}: model',
            '        for: 1m\n        labels:\n          severity: warning\n        annotations:\n          summary: "{{ $labels.model }} {{ $labels.version }}: model',
        ),
        ("3 * collapse_watch_schedule_interval_seconds", "1 * collapse_watch_schedule_interval_seconds"),
        ('up{job="collapse-watch"} == 0', "up == 0"),
    ],
)
def test_promtool_unit_tests_catch_a_weakened_rule(tmp_path: Path, original: str, mutant: str) -> None:
    """The unit tests are not vacuous: each mutation makes a must-not-fire case fire."""
    promtool = _tool("promtool")
    text = RULES.read_text()
    assert original in text
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / RULES.name).write_text(text.replace(original, mutant))
    (tmp_path / "tests").mkdir()
    for t in RULE_TESTS:
        shutil.copy(t, tmp_path / "tests" / t.name)
    res = _run(promtool, "test", "rules", *(str(tmp_path / "tests" / t.name) for t in RULE_TESTS))
    assert res.returncode != 0, res.stdout


def test_every_rule_has_a_unit_test() -> None:
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    records = {r["record"] for r in _rules() if "record" in r}
    tested_alerts: set[str] = set()
    tested_exprs: list[str] = []
    must_not_fire: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for a in case.get("alert_rule_test", []):
                tested_alerts.add(a["alertname"])
                if not a.get("exp_alerts"):
                    must_not_fire.add(a["alertname"])
            tested_exprs += [e["expr"] for e in case.get("promql_expr_test", [])]
    assert alerts == tested_alerts
    assert alerts == must_not_fire  # every alert also has a case where it must stay silent
    for record in records:
        assert any(record in e for e in tested_exprs), record


def test_alerts_have_severity_annotations_and_runbook_anchor() -> None:
    headings = {
        re.sub(r"[^a-z0-9-]", "", ln[3:].strip().lower())
        for ln in RUNBOOK.read_text().splitlines()
        if ln.startswith("## ")
    }
    for rule in _rules():
        if "alert" not in rule:
            continue
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"], rule["alert"]
        assert "for" in rule, f"{rule['alert']} has no for:"
        assert rule["alert"].startswith("CollapseWatch"), rule["alert"]
        assert rule["labels"]["severity"] != "critical", f"{rule['alert']} would page by default"
        # absolute links: the base is an external label of prometheus.yml
        base = "{{ $externalLabels.collapse_watch_docs_url }}/"
        assert ann["runbook_url"].startswith(base), rule["alert"]
        path, _, anchor = ann["runbook_url"][len(base) :].partition("#")
        assert (REPO / "docs" / path).exists() and anchor == rule["alert"].lower() and anchor in headings
        assert ann["dashboard"].startswith("{{ $externalLabels.collapse_watch_grafana_url }}/d/"), rule[
            "alert"
        ]


def test_rules_use_only_contract_names() -> None:
    for rule in _rules():
        assert _allowed(_names_in(rule["expr"])) == set(), rule.get("alert") or rule.get("record")


def test_loopback_prometheus_config_renders_and_checks(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    path = render_prometheus_config(tmp_path, "127.0.0.1:19108", "127.0.0.1:19093", interval="1s")
    cfg = yaml.safe_load(path.read_text())
    assert cfg["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:19108"]}]
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": ["127.0.0.1:19093"]}]
    assert cfg["global"]["evaluation_interval"] == "1s"
    res = _run(promtool, "check", "config", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(_rules())} rules found" in res.stdout + res.stderr  # every shipped rule loads


# --- Alertmanager ----------------------------------------------------------------------------


def test_amtool_check_config() -> None:
    amtool = _tool("amtool")
    res = _run(amtool, "check-config", str(ALERTMANAGER))
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=CollapseWatchCollapseSuspected", "severity=warning", "model=a"], "team"),
        (["alertname=CollapseWatchDiversityWatch", "severity=warning", "model=a"], "team"),
        (["alertname=CollapseWatchSampleErrorsHigh", "severity=info", "model=a"], "null"),
        (["alertname=Anything", "severity=critical"], "pager,team"),
    ],
)
def test_alertmanager_routes_by_severity(labels: list[str], receiver: str) -> None:
    amtool = _tool("amtool")
    res = _run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == receiver


def test_alertmanager_inhibits_decline_under_collapse() -> None:
    cfg = yaml.safe_load(ALERTMANAGER.read_text())
    rule = next(r for r in cfg["inhibit_rules"] if "CollapseSuspected" in r["source_matchers"][0])
    assert "CollapseWatchDiversityWatch" in rule["target_matchers"][0]
    assert rule["equal"] == ["model"]
    assert set(cfg["route"]["group_by"]) == {"alertname", "model"}


def test_loopback_alertmanager_config_checks(tmp_path: Path) -> None:
    amtool = _tool("amtool")
    path = render_alertmanager_config(tmp_path, "http://127.0.0.1:19999/hook")
    receivers = yaml.safe_load(path.read_text())["receivers"]
    urls = [h["url"] for r in receivers for h in r.get("webhook_configs", [])]
    assert urls and set(urls) == {"http://127.0.0.1:19999/hook"}
    res = _run(amtool, "check-config", str(path))
    assert res.returncode == 0, res.stdout + res.stderr


# --- Grafana ---------------------------------------------------------------------------------


def test_committed_dashboards_match_the_generator() -> None:
    committed = {p.stem: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    generated = {uid: gd.render(d) for uid, d in gd.all_dashboards().items()}
    assert committed.keys() == generated.keys()
    for uid, text in generated.items():
        assert committed[uid] == text, f"{uid}.json is stale: python -m collector.grafana.dashboards"


def test_generator_cli_writes_the_files(tmp_path: Path) -> None:
    assert gd.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{u}.json" for u in gd.UIDS.values())
    json.loads((tmp_path / "collapse-watch-model.json").read_text())


def test_dashboard_uids_and_variables() -> None:
    boards = gd.all_dashboards()
    assert set(boards) == {"collapse-watch-overview", "collapse-watch-model", "collapse-watch-health"}
    for board in boards.values():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["model"]["type"] == "query"
        assert variables["model"]["query"]["query"] == "label_values(collapse_watch_diversity, model)"
        assert variables["model"]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def _board_panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for uid, board in gd.all_dashboards().items():
        for panel in gd.iter_panels(board):
            yield uid, panel


def test_every_panel_has_datasource_description_unit_and_unique_id() -> None:
    for uid, board in gd.all_dashboards().items():
        ids = [p["id"] for p in gd.iter_panels(board)]
        assert len(ids) == len(set(ids)), uid
    for uid, panel in _board_panels():
        if panel["type"] == "row":
            continue
        where = f"{uid}: {panel['title']}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert len(panel["description"]) > 20, where
        assert panel["fieldConfig"]["defaults"]["unit"], where
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", where
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, where


def test_dashboard_queries_use_only_contract_names() -> None:
    seen: set[str] = set()
    for uid, panel in _board_panels():
        for target in panel.get("targets", []):
            names = _names_in(target["expr"])
            assert _allowed(names) == set(), f"{uid}: {panel['title']}: {target['expr']}"
            seen |= names
    assert {"collapse_watch_diversity_ci_lower", "collapse_watch_diversity_ci_upper"} <= seen
    assert "collapse_watch_run_duration_seconds_bucket" in seen


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """Every panel query, with Grafana's variables filled in, is valid PromQL to promtool."""
    promtool = _tool("promtool")
    values = {"$model": "support-bot", "$scope": "across", "$metric": "distinct_2"}
    rules = []
    for i, (_, panel) in enumerate(_board_panels()):
        for j, target in enumerate(panel.get("targets", [])):
            expr = target["expr"]
            for var, value in values.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, expr
            rules.append({"record": f"dashboard:query_{i}_{j}:test", "expr": expr})
    path = tmp_path / "dashboard-queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    res = _run(promtool, "check", "rules", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(rules)} rules found" in res.stdout + res.stderr


def test_overview_shows_every_headline_change_worst_first() -> None:
    board = gd.overview_dashboard()
    exprs = [t["expr"] for p in gd.iter_panels(board) for t in p.get("targets", [])]
    for metric in gd.HEADLINE_METRICS:
        assert any(f'metric="{metric}"' in e and e.startswith("sort(") for e in exprs), metric
    assert any(e.startswith("bottomk(") for e in exprs)


def test_verdict_table_links_each_model_to_its_history() -> None:
    """A data link from the overview's verdict table to the model dashboard, for that row's model."""
    board = gd.overview_dashboard()
    table = next(p for p in gd.iter_panels(board) if p["title"] == "Verdict per model and version")
    links = [
        link
        for o in table["fieldConfig"]["overrides"]
        if o["matcher"] == {"id": "byName", "options": "model"}
        for prop in o["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
    ]
    assert [link["url"].split("?")[0] for link in links] == [
        f"/d/{gd.model_dashboard()['uid']}/collapse-watch-model"
    ]
    assert "var-model=${__data.fields.model}" in links[0]["url"]


def test_model_dashboard_marks_each_version_where_it_appeared() -> None:
    (note,) = gd.model_dashboard()["annotations"]["list"]
    assert note["expr"].startswith('collapse_watch_version_first_seen_timestamp_seconds{model="$model"}')
    assert note["useValueForTime"] is True and note["expr"].endswith("* 1000")  # Grafana wants ms


def test_grafana_provisioning_points_at_compose_services() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    source = ds["datasources"][0]
    assert source["type"] == "prometheus" and source["uid"] == "collapse-watch-prometheus"
    assert source["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "collapse-watch.yml").read_text())
    provider = prov["providers"][0]
    assert provider["type"] == "file"
    grafana = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    targets = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    assert targets[provider["options"]["path"]] == "./dashboards/grafana/dashboards"


# --- docker-compose --------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_bind_mounts_exist_and_depends_on_health() -> None:
    services = _compose()["services"]
    assert set(services) == {"collector", "postgres", "prometheus", "alertmanager", "grafana"}
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            # ${VAR:-./default}:/target -> the default, the file compose mounts when VAR is unset
            source = re.sub(r"^\$\{[A-Z_]+:-([^}]*)\}", r"\1", volume).split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source}"
            else:
                assert source in _compose()["volumes"], f"{name}: {source}"
        for dep, cond in svc.get("depends_on", {}).items():
            assert cond == {"condition": "service_healthy"}
            assert "healthcheck" in services[dep], f"{name} waits on {dep}, which has no healthcheck"
    # The image's torch is the CPU build of the version pyproject.toml's `local` extra pins (the
    # in-process embedding backend the image installs by default).
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pin = next(d for d in project["optional-dependencies"]["local"] if d.startswith("torch"))
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"ARG TORCH_VERSION={pin.removeprefix('torch==')}+cpu" in dockerfile
    assert "ARG EXTRAS=local" in dockerfile


def test_compose_ports_agree_with_prometheus_and_grafana_config() -> None:
    services = _compose()["services"]
    published = {
        name: {int(p.split(":")[-1]) for p in svc.get("ports", [])} for name, svc in services.items()
    }
    prom = yaml.safe_load((PROM / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "collapse-watch")
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "collector" and int(port) in published["collector"]
    (am,) = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    host, port = am.split(":")
    assert host == "alertmanager" and int(port) in published["alertmanager"]
    assert 9090 in published["prometheus"] and 3000 in published["grafana"]
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"] if v.startswith("./"))
    assert mounts["./dashboards/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert mounts["./dashboards/prometheus/rules"] == "/etc/prometheus/rules"  # rule_files: rules/*.yml
    collector = services["collector"]
    env = collector["environment"]
    assert env["COLLAPSE_WATCH_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["COLLAPSE_WATCH_DATABASE_URL"]
    command = " ".join(collector["command"])
    assert command.index("collapse-watch db upgrade") < command.index("collapse-watch run --config")
    config_mount = next(v for v in collector["volumes"] if v.endswith("/etc/collapse-watch/config.yml:ro"))
    config = yaml.safe_load((REPO / config_mount.split(":")[0]).read_text())
    model = config["models"][0]
    assert model["source"]["type"] == "openai" and model["schedule"]["every"]


def test_compose_collector_config_is_valid_for_the_collector() -> None:
    """The example config passes the collector's own validation and serves metrics on 9108."""
    config_module = pytest.importorskip("collector.config")
    cfg = config_module.load_config(REPO / "dashboards" / "collector" / "config.yml")
    assert cfg.metrics_port == 9108
    assert cfg.state_dir == "/var/lib/collapse-watch"
    assert [m.name for m in cfg.models] == ["support-bot"]
    assert cfg.models[0].schedule.every_seconds == 1800


def test_compose_collector_config_needs_no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """compose passes OPENAI_API_KEY empty when unset; the shipped config must still collect from an
    endpoint that needs no key (a local vLLM), sending no Authorization header."""
    config_module = pytest.importorskip("collector.config")
    openai_source = pytest.importorskip("collector.sources.openai")
    monkeypatch.setenv("OPENAI_API_KEY", "")
    path = REPO / "dashboards" / "collector" / "config.yml"
    # the receiver's token file exists only where compose mounts it (the example token by default)
    assert config_module.check_config(path) == [
        "alert_receiver: cannot read the key file /etc/collapse-watch/secrets/alerts_token: No such file or directory"
    ]
    credentials = pytest.importorskip("collector.credentials")
    assert credentials.read_key_file(str(REPO / "dashboards" / "secrets" / "alerts_token.example"))
    model = config_module.load_config(path).models[0]
    source = openai_source.OpenAISource(model.source, version=model.version)
    try:
        assert "authorization" not in {k.lower() for k in source._client.headers}
    finally:
        source.close()


# --- push_dashboards against a recording loopback server ------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Answers like Grafana's folder and dashboard API and records every request."""

    folders: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    status: int = 200

    def _reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        entry = {
            "method": self.command,
            "path": self.path,
            "auth": self.headers.get("Authorization"),
            "body": body,
        }
        self.requests.append(entry)
        return entry

    def do_GET(self) -> None:
        self._record()
        if self.status != 200:
            self._reply(self.status, {"message": "denied"})
        elif self.path.startswith("/api/folders"):
            self._reply(200, self.folders)
        else:
            self._reply(404, {"message": "not found"})

    def do_POST(self) -> None:
        entry = self._record()
        if self.path == "/api/folders":
            folder = {"id": 7, "uid": entry["body"].get("uid", "gen"), "title": entry["body"]["title"]}
            self.folders.append(folder)
            self._reply(200, folder)
        elif self.path == "/api/dashboards/db":
            uid = entry["body"]["dashboard"]["uid"]
            self._reply(200, {"status": "success", "uid": uid, "url": f"/d/{uid}", "version": 1})
        else:
            self._reply(404, {"message": "not found"})

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def grafana_stub() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Recorder", (_Recorder,), {"folders": [], "requests": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_push_creates_folder_and_overwrites_dashboards(grafana_stub: tuple[str, type[_Recorder]]) -> None:
    url, rec = grafana_stub
    results = push_dashboards(url, token="secret-token", folder="collapse-watch")
    assert [r["uid"] for r in results] == list(gd.UIDS.values())
    calls = [(r["method"], r["path"].split("?")[0]) for r in rec.requests]
    assert calls[0] == ("GET", "/api/folders")
    assert calls[1] == ("POST", "/api/folders")
    assert calls[2:] == [("POST", "/api/dashboards/db")] * 3
    assert rec.requests[1]["body"] == {"title": "collapse-watch", "uid": "collapse-watch"}
    assert all(r["auth"] == "Bearer secret-token" for r in rec.requests)
    for posted in rec.requests[2:]:
        body = posted["body"]
        assert body["folderUid"] == "collapse-watch" and body["overwrite"] is True
        assert body["dashboard"]["id"] is None
        assert body["dashboard"] == dict(gd.all_dashboards()[body["dashboard"]["uid"]], id=None)


def test_push_reuses_existing_folder_with_basic_auth(grafana_stub: tuple[str, type[_Recorder]]) -> None:
    url, rec = grafana_stub
    rec.folders.append({"id": 3, "uid": "existing-uid", "title": "collapse-watch"})
    push_dashboards(url, basic_auth=("admin", "pw"), dashboards={"x": gd.health_dashboard()})
    assert [r["method"] for r in rec.requests] == ["GET", "POST"]
    assert rec.requests[1]["body"]["folderUid"] == "existing-uid"
    assert rec.requests[0]["auth"] == "Basic " + base64.b64encode(b"admin:pw").decode()


def test_push_fails_loudly(grafana_stub: tuple[str, type[_Recorder]]) -> None:
    url, rec = grafana_stub
    with pytest.raises(ValueError, match="exactly one"):
        push_dashboards(url)
    rec.status = 401
    with pytest.raises(Exception, match=r"(?i)unauthori[sz]ed|401"):
        push_dashboards(url, token="wrong")
    assert not any(r["method"] == "POST" for r in rec.requests)


def test_cli_push_uses_the_token_from_the_environment(grafana_stub: tuple[str, type[_Recorder]]) -> None:
    """`collapse-watch dashboards push` end to end (Grafana itself cannot run here: a recorder stands in)."""
    url, rec = grafana_stub
    env = {**os.environ, "GRAFANA_TOKEN": "t0k3n"}
    proc = subprocess.run(
        [sys.executable, "-m", "collector", "dashboards", "push", "--grafana-url", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert all(uid in proc.stdout for uid in gd.UIDS.values())
    assert all(r["auth"] == "Bearer t0k3n" for r in rec.requests)
    env.pop("GRAFANA_TOKEN")
    proc = subprocess.run(
        [sys.executable, "-m", "collector", "dashboards", "push", "--grafana-url", url],
        capture_output=True,
        text=True,
        env={k: v for k, v in env.items() if not k.startswith("GRAFANA_")},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2 and "GRAFANA_TOKEN" in proc.stderr
