"""Issue #6 end to end with real binaries: real scores -> store -> exporter -> Prometheus -> Alertmanager.

Nothing is stubbed:

1. ``collapse-watch score FILE --store`` (the installed tool, full metric suite with the packaged
   embedder) builds a SQLite store from real SmolLM2 outputs: ``collapsing-bot`` v1..v4 are
   ``tests/data/series_v1..4.jsonl`` (temperatures 1.0, 0.7, 0.4, 0.2: a collapsing series) and
   ``healthy-bot`` v1..v3 are three independent samples of the same model at temperature 1.0
   (``series_v1.jsonl``, ``control_b.jsonl``, ``smollm2_outputs.jsonl``; the last one's 24 prompts
   hold the 16 of the others). Each ``score --store`` assesses the model (comparisons, trends, verdict).
2. ``collapse-watch serve-metrics`` serves that store; ``promtool check metrics`` lints its output.
3. ``prometheus`` (the shipped config and rules, rendered for loopback by ``tests/ops_config.py`` with
   1 s intervals and every alert's ``for:`` shortened to 1 s) and ``prometheus-alertmanager`` (shipped
   routes and inhibitions, 1 s grouping) deliver to a webhook recorder in this test.
4. Every query of every panel (and every annotation) of every generated Grafana dashboard runs
   against that Prometheus, for each model, scope and headline metric, and must return data, with
   the exporter at its default ``metrics_detail`` (summary: the dashboards are complete on the defaults). Counters only have an ``increase``
   while they change, so once Prometheus is scraping, one failed run per model (one sample lost to
   ``connection refused``) is recorded through the real ``Store`` API.

Skips when ``prometheus``/``promtool``/``prometheus-alertmanager`` are absent. Runs in about 2-3
minutes (most of it the seven real scoring runs).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ops_config import render_alertmanager_config, render_prometheus_config
from ops_stack import (
    binaries,
    free_port,
    get,
    start_alertmanager,
    start_prometheus,
    start_webhook,
    stop,
    wait_for,
)

from collector.grafana.dashboards import (
    HEADLINE_METRICS,
    health_dashboard,
    model_dashboard,
    overview_dashboard,
)
from collector.store.api import SampleRecord, Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATA = Path(__file__).resolve().parent / "data"
COLLAPSING = "collapsing-bot"
HEALTHY = "healthy-bot"
SERIES: dict[str, list[tuple[str, str]]] = {
    COLLAPSING: [(f"v{n}", f"series_v{n}.jsonl") for n in range(1, 5)],
    HEALTHY: [("v1", "series_v1.jsonl"), ("v2", "control_b.jsonl"), ("v3", "smollm2_outputs.jsonl")],
}
MODELS = (COLLAPSING, HEALTHY)
SCOPES = ("across", "within")
DIVERSITY_ALERTS = ("CollapseWatchCollapseSuspected", "CollapseWatchDiversityWatch")
# Grafana's built-in interval variables; the shipped dashboards use fixed windows, but a panel that
# adopts one must still be checked rather than fail on an unknown variable.
GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1m"}


def _tool() -> list[str]:
    """The installed ``collapse-watch`` script of this interpreter's environment, else ``-m collector``."""
    script = Path(sys.executable).with_name("collapse-watch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "collector"]


def _env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")


@dataclass
class Stack:
    store_url: str
    exporter_url: str
    prometheus_api: str
    started: float  # unix time when Prometheus was started
    notifications: list[dict[str, Any]]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} | ({} if at is None else {"time": f"{at:.3f}"})
        return self._api("query", params)

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> list[dict[str, Any]]:
        return self._api(
            "query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step}
        )

    def _api(self, endpoint: str, params: dict[str, str]) -> list[dict[str, Any]]:
        url = f"{self.prometheus_api}/{endpoint}?{urllib.parse.urlencode(params)}"
        try:
            data = json.loads(get(url))
        except urllib.error.HTTPError as exc:  # a bad expression answers 400 with the parser's error
            if exc.code == 503:  # Prometheus still starting (slow on a loaded machine): wait_for retries
                raise
            raise AssertionError(f"{endpoint} {params['query']!r}: {exc.read().decode()}") from None
        assert data["status"] == "success", data
        return list(data["data"]["result"])

    def alerts(self, alertname: str, model: str) -> list[dict[str, Any]]:
        """Alerts named ``alertname`` for ``model`` in every notification the webhook received."""
        return [
            a
            for note in list(self.notifications)
            for a in note["alerts"]
            if a["labels"].get("alertname") == alertname and a["labels"].get("model") == model
        ]


@pytest.fixture(scope="module")
def bins() -> dict[str, str]:
    return binaries("prometheus", "promtool", "alertmanager")


@pytest.fixture(scope="module")
def store_url(bins: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store filled by the real ``collapse-watch score --store`` (scored, stored, assessed)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'collapse-watch.db'}"
    for model, versions in SERIES.items():
        for version, name in versions:
            proc = subprocess.run(
                [
                    *_tool(),
                    "score",
                    str(DATA / name),
                    "--store",
                    "--model",
                    model,
                    "--version",
                    version,
                    "--database-url",
                    url,
                ],
                capture_output=True,
                text=True,
                env=_env(),
                timeout=300,
            )
            assert proc.returncode == 0, f"score {name} as {model}@{version} failed:\n{proc.stderr}"
    return url


def _latest_verdicts(url: str) -> dict[str, str | None]:
    overview = Store(url).overview()
    latest: dict[str, tuple[int, str | None]] = {}
    for v in overview.versions:
        if v.model not in latest or v.ordinal > latest[v.model][0]:
            latest[v.model] = (v.ordinal, v.verdict)
    return {model: verdict for model, (_, verdict) in latest.items()}


def _record_failed_run(store: Store, model: str, version: str) -> None:
    """What the runner stores when the endpoint refuses: a failed run with one sample that errored."""
    run_id = store.begin_run(model, version)
    store.add_samples(
        run_id,
        [
            SampleRecord(
                prompt_key="p-refused",
                prompt="Say something.",
                output=None,
                sample_index=0,
                error="connection refused",
            )
        ],
    )
    store.finish_run(run_id, "failed", "connection refused")


@pytest.fixture(scope="module")
def stack(bins: dict[str, str], store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The real exporter, Prometheus and Alertmanager on loopback, plus a webhook recorder."""
    tmp = tmp_path_factory.mktemp("stack")
    # schedules give the exporter collapse_watch_schedule_interval_seconds (hourly: nothing is stale)
    config = tmp / "collector.yml"
    config.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "name": model,
                        "source": {"type": "jsonl", "path": str(DATA / versions[-1][1])},
                        "schedule": {"every": "1h"},
                    }
                    for model, versions in SERIES.items()
                ],
            }
        )
    )
    exporter_port, prom_port, am_port = free_port(), free_port(), free_port()
    hook, received = start_webhook()
    am_cfg = render_alertmanager_config(tmp / "am", f"http://127.0.0.1:{hook.server_address[1]}/alerts")
    prom_cfg = render_prometheus_config(
        tmp / "prom",
        collector_target=f"127.0.0.1:{exporter_port}",
        alertmanager_target=f"127.0.0.1:{am_port}",
        interval="1s",
        alert_for="1s",
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    *_tool(),
                    "serve-metrics",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(exporter_port),
                    "--config",
                    str(config),
                    "--database-url",
                    store_url,
                ],
                stdout=subprocess.DEVNULL,
                stderr=(tmp / "exporter.log").open("w"),
                env=_env(),
            )
        )
        exporter_url = f"http://127.0.0.1:{exporter_port}/metrics"
        wait_for("the exporter's /metrics", lambda: b"collapse_watch_up 1.0" in get(exporter_url))
        procs.append(start_alertmanager(bins["alertmanager"], am_cfg, am_port, tmp))
        started = time.time()
        procs.append(start_prometheus(bins["prometheus"], prom_cfg, prom_port, tmp))
        stack = Stack(store_url, exporter_url, f"http://127.0.0.1:{prom_port}/api/v1", started, received)
        # a few scrapes of the stored state, then one failed run per model, so the counters move
        wait_for(
            "two scrapes of the exporter", lambda: stack.query("count_over_time(collapse_watch_up[1m]) >= 2")
        )
        store = Store(store_url)
        for model, versions in SERIES.items():
            _record_failed_run(store, model, versions[-1][0])
        wait_for(
            "the failed runs in Prometheus",
            lambda: (
                len(stack.query('increase(collapse_watch_runs_total{status="failed"}[5m]) > 0'))
                == len(MODELS)
            ),
        )
        yield stack
    finally:
        stop(list(reversed(procs)))
        hook.shutdown()


def test_real_scores_give_collapse_suspected_and_ok(store_url: str) -> None:
    """The store's verdicts, before any monitoring: the collapsing series is caught, the control is not."""
    assert _latest_verdicts(store_url) == {COLLAPSING: "collapse_suspected", HEALTHY: "ok"}


def test_exporter_output_passes_promtool(stack: Stack, bins: dict[str, str]) -> None:
    text = get(stack.exporter_url)
    lint = subprocess.run([bins["promtool"], "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), (
        lint.stdout.decode() + lint.stderr.decode()
    )
    body = text.decode()
    assert re.search(
        rf'collapse_watch_collapse_suspected{{model="{COLLAPSING}",version="v4",worst="[a-z_0-9,]+"}} 1.0',
        body,
    )
    # worst names any metric the verdict counted as declined, even when too few for an alarm
    assert re.search(
        rf'collapse_watch_collapse_suspected{{model="{HEALTHY}",version="v3",worst="[a-z_0-9,]*"}} 0.0', body
    )


def test_collapse_alert_reaches_the_webhook_for_the_collapsing_model_only(stack: Stack) -> None:
    alerts = wait_for(
        f"CollapseWatchCollapseSuspected for {COLLAPSING} at the webhook",
        lambda: stack.alerts("CollapseWatchCollapseSuspected", COLLAPSING),
    )
    assert alerts[0]["status"] == "firing"
    assert alerts[0]["labels"]["severity"] == "warning"  # the team's channel; paging is opt-in
    assert alerts[0]["labels"]["version"] == "v4" and alerts[0]["labels"]["worst"]
    note = next(
        n
        for n in stack.notifications
        if n["groupLabels"].get("alertname") == "CollapseWatchCollapseSuspected"
    )
    assert note["receiver"] == "team"
    # the healthy model, evaluated every second since Prometheus started, never even pends
    assert stack.query(f'collapse_watch_collapse_suspected{{model="{HEALTHY}"}} == 0')
    assert stack.query(f'collapse_watch_diversity_watch{{model="{HEALTHY}"}} == 0')
    time.sleep(5)
    window = f"[{int(time.time() - stack.started) + 1}s]"
    healthy_alerts = stack.query(
        f'max_over_time(ALERTS{{model="{HEALTHY}",alertname=~"{"|".join(DIVERSITY_ALERTS)}"}}{window})'
    )
    assert healthy_alerts == []
    for name in DIVERSITY_ALERTS:
        assert stack.alerts(name, HEALTHY) == [], f"{name} notified for {HEALTHY}"


def _dashboard_queries() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(dashboard title, panel title, panel type, target) of every panel, rows' nested panels too,
    and of every annotation query (type ``annotation``)."""
    for board in (overview_dashboard(), model_dashboard(), health_dashboard()):
        variables = {v["name"] for v in board["templating"]["list"]}
        assert variables <= {"datasource", "model", "scope", "metric"}, (
            f"unknown variables in {board['title']}"
        )
        for note in board["annotations"]["list"]:
            yield board["title"], note["name"], "annotation", {"expr": note["expr"], "refId": "annotation"}
        stack = list(board["panels"])
        while stack:
            panel = stack.pop(0)
            stack.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                yield board["title"], panel["title"], panel["type"], target


def _substitutions(expr: str) -> Iterator[dict[str, str]]:
    """Every combination of the variables ``expr`` uses: each model, scope and headline metric."""
    used = set(re.findall(r"\$\{?(\w+)\}?", expr)) - set(GRAFANA_INTERVALS)
    choices = {"model": MODELS, "scope": SCOPES, "metric": HEADLINE_METRICS}
    unknown = used - set(choices)
    assert not unknown, f"no test value for variable(s) {unknown} in {expr}"
    combos: list[dict[str, str]] = [dict(GRAFANA_INTERVALS)]
    for name in sorted(used):
        combos = [c | {name: value} for c in combos for value in choices[name]]
    yield from combos


def _substitute(expr: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], expr)


def _has_data(result: list[dict[str, Any]]) -> bool:
    """At least one finite sample (histogram_quantile of an idle histogram answers NaN: no data)."""
    for series in result:
        points = series.get("values") or [series["value"]]
        if any(math.isfinite(float(v)) for _, v in points):
            return True
    return False


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    failures: list[str] = []
    checked = 0
    now = time.time()
    # The range's points are start + k*step up to end: a start that is not a whole number of steps
    # before `now` puts the last point up to a step before it, where a series that only just
    # appeared (the failed runs' increase, their duration quantiles) may not exist yet. A whole
    # number of steps ends the range exactly at `now`, the instant the instant queries see.
    start = now - int(now - stack.started)
    for board, panel, kind, target in _dashboard_queries():
        for values in _substitutions(target["expr"]):
            expr = _substitute(target["expr"], values)
            where = f"{board} / {panel} [{target['refId']}] {values.get('model', '')} {values.get('scope', '')} {values.get('metric', '')}".rstrip()
            checked += 1
            if not _has_data(stack.query(expr, at=now)):
                failures.append(f"{where}: instant query empty: {expr}")
            if kind in ("timeseries", "annotation") and not _has_data(stack.query_range(expr, start, now)):
                failures.append(f"{where}: range query empty: {expr}")
    assert checked > 100
    # the model dashboard's metric choices (its label_values query) are the metrics checked here
    for model in MODELS:
        offered = stack.query(f'group by (metric) (collapse_watch_diversity_ci_lower{{model="{model}"}})')
        assert {r["metric"]["metric"] for r in offered} == set(HEADLINE_METRICS), model
    assert not failures, f"{len(failures)} of {checked} dashboard queries returned no data:\n" + "\n".join(
        failures
    )
