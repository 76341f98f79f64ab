"""The shipped Alertmanager receivers, with the real ``prometheus-alertmanager``:

* the default receiver is the collector's own webhook: a firing and then a resolved alert posted to
  Alertmanager's API end up in the alert history (SQL) through the collector's real HTTP server;
* the Slack example (``dashboards/alertmanager/slack.example.yml``) passes ``amtool check-config``
  and Alertmanager renders its Slack message into a loopback receiver standing in for Slack's
  incoming webhook (the only fake: Slack itself cannot be reached from here).
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from ops_config import ALERTMANAGER_YML, render_alertmanager_config
from ops_stack import binaries, free_port, start_alertmanager, start_webhook, stop, wait_for
from store_helpers import migrated_store

from collector.readout.server import serve_store_metrics
from collector.store.alerts import AlertHistory

pytestmark = pytest.mark.integration
SLACK_EXAMPLE = ALERTMANAGER_YML.with_name("slack.example.yml")


def post_alert(am_port: int, *, ends: datetime | None = None) -> None:
    """Post one collapse alert to Alertmanager's API, as Prometheus does."""
    alert: dict[str, Any] = {
        "labels": {
            "alertname": "CollapseWatchCollapseSuspected",
            "severity": "warning",
            "model": "support-bot",
            "version": "v4",
            "worst": "vendi_score,distinct_2",
        },
        "annotations": {
            "summary": "support-bot v4: model collapse suspected (worst: vendi_score,distinct_2)",
            "description": "The verdict of support-bot version v4 is collapse_suspected.",
            "runbook_url": "https://docs.example.org/runbook.md#collapsewatchcollapsesuspected",
            "dashboard": "https://grafana.example.org/d/collapse-watch-model?var-model=support-bot",
        },
        "startsAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    }
    if ends is not None:
        alert["endsAt"] = ends.isoformat()
    req = urllib.request.Request(
        f"http://127.0.0.1:{am_port}/api/v2/alerts",
        data=json.dumps([alert]).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def test_default_receiver_stores_firing_and_resolved_in_the_alert_history(tmp_path: Path) -> None:
    """Through the shipped webhook's bearer token: the receiver requires it (issue #22)."""
    bins = binaries("alertmanager")
    store = migrated_store(f"sqlite:///{tmp_path / 'history.db'}")
    token = "am-to-collector-7f3c9a"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")  # as a mounted secret: the newline is stripped
    server = serve_store_metrics(store, host="127.0.0.1", port=0, alerts_token=token)
    am_port = free_port()
    url = f"http://127.0.0.1:{server.server_port}/alerts"
    unauthenticated = urllib.request.Request(url, data=b"{}", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unauthenticated, timeout=10)
    assert refused.value.code == 401  # even from loopback, once a token is configured
    cfg = render_alertmanager_config(tmp_path / "am", url, token_file=token_file)
    assert yaml.safe_load(ALERTMANAGER_YML.read_text())["receivers"][1]["webhook_configs"][0]["url"] == (
        "http://collector:9108/alerts"  # the shipped default: the collector's own endpoint
    )
    procs = [start_alertmanager(bins["alertmanager"], cfg, am_port, tmp_path)]
    history = AlertHistory(store.engine)
    try:
        wait_for("Alertmanager", lambda: post_alert(am_port) or True)
        firing = wait_for("the firing notification in SQL", lambda: history.recent("support-bot"))
        assert [(e.status, e.alertname, e.version, e.receiver) for e in firing] == [
            ("firing", "CollapseWatchCollapseSuspected", "v4", "team")
        ]
        post_alert(am_port, ends=datetime.now(UTC) - timedelta(seconds=1))
        events = wait_for(
            "the resolved notification in SQL",
            lambda: [e for e in history.recent("support-bot") if e.status == "resolved"],
        )
        assert events[0].ends_at is not None and events[0].summary.startswith("support-bot v4")
    finally:
        stop(procs)
        server.shutdown()
        server.server_close()


def test_slack_example_checks_and_renders_the_slack_message(tmp_path: Path) -> None:
    bins = binaries("alertmanager", "amtool")
    res = subprocess.run(
        [bins["amtool"], "check-config", str(SLACK_EXAMPLE)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr
    slack, slack_received = start_webhook()  # stands in for https://hooks.slack.com/services/...
    hook, _ = start_webhook()
    secret = tmp_path / "slack_webhook_url"
    secret.write_text(f"http://127.0.0.1:{slack.server_address[1]}/services/T000/B000/XXXX")
    cfg = yaml.safe_load(SLACK_EXAMPLE.read_text())
    cfg["global"]["slack_api_url_file"] = str(secret)
    cfg["route"]["group_wait"] = cfg["route"]["group_interval"] = "1s"
    for receiver in cfg["receivers"]:
        for h in receiver.get("webhook_configs", []):
            h["url"] = f"http://127.0.0.1:{hook.server_address[1]}/alerts"
    path = tmp_path / "slack.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    am_port = free_port()
    procs = [start_alertmanager(bins["alertmanager"], path, am_port, tmp_path)]
    try:
        wait_for("Alertmanager", lambda: post_alert(am_port) or True)
        (message,) = wait_for("the Slack message", lambda: list(slack_received))
        assert message["channel"] == "#model-quality"
        (attachment,) = message["attachments"]
        assert attachment["title"] == "[WARNING] CollapseWatchCollapseSuspected support-bot"
        assert (
            attachment["title_link"]
            == "https://grafana.example.org/d/collapse-watch-model?var-model=support-bot"
        )
        assert "support-bot v4: model collapse suspected" in attachment["text"]
        assert (
            "Runbook: https://docs.example.org/runbook.md#collapsewatchcollapsesuspected"
            in attachment["text"]
        )
    finally:
        stop(procs)
        slack.shutdown()
        hook.shutdown()
