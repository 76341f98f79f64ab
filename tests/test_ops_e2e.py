"""End to end on loopback: real Prometheus 2.42 and Alertmanager load the shipped rules and routes.

A stand-in exporter (a ``prometheus_client`` custom collector serving metric families of the
contract in ``docs/metrics.md``, with fixed values) is scraped by a real ``prometheus``
using the config that ``tests/ops_config.py`` renders from ``dashboards/prometheus/prometheus.yml``;
alerts go to a real ``prometheus-alertmanager`` running the shipped ``alertmanager.yml`` with its
webhooks pointed at a recording server in this test. The real exporter (``collector/readout/exporter.py``)
can replace the stand-in once it exists. Skips when the binaries are absent.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ops_config import PROMETHEUS_YML, render_alertmanager_config, render_prometheus_config
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
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from collector.grafana.dashboards import overview_dashboard

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class StandInExporter(Collector):
    """Fixed contract metrics: model ``stale-bot`` last succeeded long ago, ``fresh-bot`` just now.

    Emits ``collapse_watch_up``, ``collapse_watch_last_success_timestamp_seconds``,
    ``collapse_watch_schedule_interval_seconds``, ``collapse_watch_version_ordinal``,
    ``collapse_watch_latest_version_ordinal`` and ``collapse_watch_diversity_declined``.
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.time()
        up = GaugeMetricFamily("collapse_watch_up", "store readable")
        up.add_metric([], 1)
        yield up
        last = GaugeMetricFamily(
            "collapse_watch_last_success_timestamp_seconds", "last success", labels=["model"]
        )
        last.add_metric(["stale-bot"], now - 4000)  # 4000 s > 3 * 600 s
        last.add_metric(["fresh-bot"], now - 10)
        yield last
        every = GaugeMetricFamily("collapse_watch_schedule_interval_seconds", "interval", labels=["model"])
        every.add_metric(["stale-bot"], 600)
        every.add_metric(["fresh-bot"], 600)
        yield every
        ordinal = GaugeMetricFamily("collapse_watch_version_ordinal", "ordinal", labels=["model", "version"])
        ordinal.add_metric(["fresh-bot", "v0"], 0)
        ordinal.add_metric(["fresh-bot", "v1"], 1)
        yield ordinal
        latest = GaugeMetricFamily("collapse_watch_latest_version_ordinal", "latest", labels=["model"])
        latest.add_metric(["fresh-bot"], 1)
        yield latest
        declined = GaugeMetricFamily(
            "collapse_watch_diversity_declined",
            "declined",
            labels=["model", "version", "metric", "scope"],
        )
        for metric in ("distinct_2", "self_bleu", "vendi_score"):
            declined.add_metric(["fresh-bot", "v1", metric, "across"], 1 if metric != "vendi_score" else 0)
        yield declined


def test_stale_model_alert_reaches_the_pager_webhook(tmp_path: Path) -> None:
    bins = binaries("prometheus", "alertmanager")
    registry = CollectorRegistry()
    registry.register(StandInExporter())
    exporter, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    hook, received = start_webhook()
    prom_port, am_port = free_port(), free_port()

    am_cfg = render_alertmanager_config(tmp_path / "am", f"http://127.0.0.1:{hook.server_address[1]}/alerts")
    prom_cfg = render_prometheus_config(
        tmp_path / "prom",
        collector_target=f"127.0.0.1:{exporter.server_address[1]}",
        alertmanager_target=f"127.0.0.1:{am_port}",
        interval="1s",
        alert_for="1s",
    )
    procs = [
        start_alertmanager(bins["alertmanager"], am_cfg, am_port, tmp_path),
        start_prometheus(bins["prometheus"], prom_cfg, prom_port, tmp_path),
    ]
    try:
        api = f"http://127.0.0.1:{prom_port}/api/v1"

        def query(expr: str) -> list[dict[str, Any]]:
            data = json.loads(get(f"{api}/query?query={urllib.parse.quote(expr)}"))
            return data["data"]["result"]

        # the overview dashboard's "declined vs baseline" query joins the latest version correctly
        board = overview_dashboard()
        expr = next(
            t["expr"]
            for p in board["panels"]
            if p["title"].startswith("Headline metrics declined")
            for t in p["targets"]
        ).replace("$model", ".*")
        (row,) = wait_for("the overview query", lambda: query(expr))
        assert row["metric"] == {"model": "fresh-bot"} and row["value"][1] == "2"

        def stale_notification() -> list[dict[str, Any]]:
            return [
                a
                for note in received
                for a in note["alerts"]
                if a["labels"]["alertname"] == "CollapseWatchCollectorStale"
            ]

        alerts = wait_for("CollapseWatchCollectorStale at the webhook", stale_notification)
        assert {a["labels"]["model"] for a in alerts} == {"stale-bot"}
        assert alerts[0]["labels"]["severity"] == "warning"  # nothing pages by default
        # absolute links from prometheus.yml's external labels, which are dropped from the labels
        docs = yaml.safe_load(PROMETHEUS_YML.read_text())["global"]["external_labels"]
        assert alerts[0]["annotations"]["runbook_url"] == (
            f"{docs['collapse_watch_docs_url']}/runbook.md#collapsewatchcollectorstale"
        )
        assert alerts[0]["annotations"]["dashboard"].startswith(f"{docs['collapse_watch_grafana_url']}/d/")
        assert not {k for k in alerts[0]["labels"] if k.startswith("collapse_watch_")}
        note = next(
            n for n in received if n["alerts"][0]["labels"]["alertname"] == "CollapseWatchCollectorStale"
        )
        assert note["receiver"] == "team"
        assert set(note["groupLabels"]) == {"alertname", "model"}
    finally:
        stop(procs)
        exporter.shutdown()
        hook.shutdown()
