"""The collector's HTTP server: POST /alerts stores Alertmanager notifications (both databases), bad
bodies are refused without storing anything, and /metrics answers while a writer holds SQLite's lock."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from sqlalchemy import text
from store_helpers import full_run, migrated_store

from collector.readout.server import serve_store_metrics
from collector.store.alerts import AlertHistory


def notification(status: str, *, model: str = "bot", version: str = "v4") -> dict[str, Any]:
    """A body as Alertmanager's webhook (version 4) sends it."""
    ends = "2026-11-29T10:05:00.123456789Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    return {
        "version": "4",
        "groupKey": '{}:{alertname="CollapseWatchCollapseSuspected", model="bot"}',
        "status": status,
        "receiver": "team",
        "groupLabels": {"alertname": "CollapseWatchCollapseSuspected", "model": model},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": "CollapseWatchCollapseSuspected",
                    "severity": "warning",
                    "model": model,
                    "version": version,
                    "worst": "vendi_score,distinct_2",
                },
                "annotations": {"summary": f"{model} {version}: model collapse suspected"},
                "startsAt": "2026-11-29T10:00:00.5Z",
                "endsAt": ends,
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": "c0ffee0123456789",
            }
        ],
    }


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def server(db_url: str):  # type: ignore[no-untyped-def]
    store = migrated_store(db_url)
    full_run(store, "bot", "v1", 0.8)
    srv = serve_store_metrics(store, host="127.0.0.1", port=0)
    yield store, f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


def test_webhook_stores_firing_and_resolved_notifications(server) -> None:  # type: ignore[no-untyped-def]
    store, base = server
    assert post(f"{base}/alerts", json.dumps(notification("firing")).encode()) == (200, {"stored": 1})
    assert post(f"{base}/alerts", json.dumps(notification("resolved")).encode()) == (200, {"stored": 1})
    events = AlertHistory(store.engine).recent("bot")
    assert [e.status for e in events] == ["resolved", "firing"]  # newest first
    assert {(e.alertname, e.version, e.severity, e.receiver) for e in events} == {
        ("CollapseWatchCollapseSuspected", "v4", "warning", "team")
    }
    assert events[1].ends_at is None  # Alertmanager's zero time: not ended
    assert events[0].ends_at is not None and events[0].ends_at.minute == 5
    with store.engine.connect() as conn:  # the documented view has them too
        rows = conn.execute(text("SELECT alertname, status FROM v_alert_history ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [
        ("CollapseWatchCollapseSuspected", "firing"),
        ("CollapseWatchCollapseSuspected", "resolved"),
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "JSON object"),
        (json.dumps({**notification("firing"), "alerts": []}).encode(), "'alerts'"),
        (
            json.dumps(
                {**notification("firing"), "alerts": [notification("firing")["alerts"][0] | {"status": "x"}]}
            ).encode(),
            "alerts[0].status",
        ),
    ],
)
def test_webhook_refuses_what_is_not_a_notification(server, body: bytes, reason: str) -> None:  # type: ignore[no-untyped-def]
    store, base = server
    status, answer = post(f"{base}/alerts", body)
    assert status == 400 and reason in answer["error"]
    assert AlertHistory(store.engine).recent() == []


def test_one_bad_alert_stores_none_of_the_notification(server) -> None:  # type: ignore[no-untyped-def]
    store, base = server
    good = notification("firing")["alerts"][0]
    body = {**notification("firing"), "alerts": [good, {**good, "labels": {"model": "bot"}}]}
    status, answer = post(f"{base}/alerts", json.dumps(body).encode())
    assert status == 400 and "alerts[1].labels.alertname" in answer["error"]
    assert AlertHistory(store.engine).recent() == []


def test_metrics_is_still_served_next_to_the_webhook(server) -> None:  # type: ignore[no-untyped-def]
    _, base = server
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
        body = resp.read().decode()
    assert (
        "collapse_watch_up 1.0" in body
        and 'collapse_watch_runs_total{model="bot",status="success"} 1.0' in body
    )


def test_metrics_answers_while_a_writer_holds_the_sqlite_lock(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    store = migrated_store(url)
    full_run(store, "bot", "v1", 0.8)
    srv = serve_store_metrics(store, host="127.0.0.1", port=0)
    writer = sqlite3.connect(tmp_path / "busy.db", isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the write lock, held as a long collection run would
        writer.execute("UPDATE models SET name = name")
        for _ in range(2):  # the first scrape and a later one, both while the lock is held
            t0 = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{srv.server_port}/metrics", timeout=10) as resp:
                body = resp.read().decode()
            took = time.monotonic() - t0
            assert took < 2.0, f"/metrics took {took:.2f}s under a held write lock"
            assert "collapse_watch_up 1.0" in body
            assert 'collapse_watch_runs_total{model="bot",status="success"} 1.0' in body
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        srv.shutdown()
        srv.server_close()


def test_a_slow_store_gets_the_last_snapshot_with_its_age_and_never_more_than_the_timeout() -> None:
    import threading

    from collector.readout.snapshot import Snapshot, SnapshotReader

    gate = threading.Event()
    calls = {"n": 0}

    def load() -> Snapshot:
        calls["n"] += 1
        if calls["n"] > 1:
            gate.wait(10)  # a read stuck behind a lock
        return Snapshot(baselines={"bot": "v1"})

    read = SnapshotReader(load, timeout=0.3)
    assert read().age_seconds == 0
    t0 = time.monotonic()
    stale = read()
    assert time.monotonic() - t0 < 1.0 and stale.baselines == {"bot": "v1"} and stale.age_seconds > 0.2
    read()  # still stuck: no second read is started behind the first
    assert calls["n"] == 2
    gate.set()

    never = SnapshotReader(lambda: gate.wait(10) and Snapshot(), timeout=0.2)  # type: ignore[arg-type,return-value]
    gate.clear()
    with pytest.raises(TimeoutError, match="no earlier snapshot"):
        never()
    gate.set()


def test_history_and_the_html_report_show_the_model_alerts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from collector.cli import app
    from collector.report.load import write_report

    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = migrated_store(url)
    full_run(store, "bot", "v1", 0.8)
    full_run(store, "bot", "v4", 0.5)
    AlertHistory(store.engine).record(notification("firing"))
    AlertHistory(store.engine).record(notification("firing", model="other"))
    res = CliRunner().invoke(app, ["history", "bot", "--database-url", url], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "bot: alerts received" in res.output and "CollapseWatchCollapseSuspected" in res.output
    assert "other v4" not in res.output  # another model's alerts are not listed
    html = write_report(store, "bot", tmp_path / "report").read_text()
    assert 'id="alerts"' in html and "bot v4: model collapse suspected" in html
