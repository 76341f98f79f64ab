"""The shipped docker-compose.yml, started for real on a Docker Engine, end to end.

``docker-compose.yml`` plus ``tests/compose/docker-compose.test.yml`` (same services, commands,
volumes and health checks; images built here from a local Debian base, the collector from the
project's own Dockerfile with a local find-links for CPU torch; see ``tests/compose/stack.py``):

1. build, ``up -d`` (PostgreSQL, Alertmanager, Prometheus, the collector; Grafana is not obtainable
   here and not started), wait until every container's health check passes;
2. the collector image runs as non-root from the installed wheel (migrations packaged with it) and
   ``db upgrade`` migrated the PostgreSQL container's database to the head revision;
3. real SmolLM2 outputs (``collector/demo_data``: SmolLM2 fine-tuned on its own outputs, one
   version after another) are published into a mounted log folder that the collector's ``jsonl``
   source tails (v1 before the stack starts, as a log a team already has); each version's run and
   its samples are stored in PostgreSQL;
4. the collector is restarted with no grace (SIGKILL) while it collects v4: the next start marks
   that run ``interrupted``, no run is left ``running``, and every published line of v4 is stored
   exactly once (none lost, none collected twice); v5 is then collected and judged as usual;
5. Prometheus scrapes the collector (target up) with the shipped rules loaded (timings shortened),
   ``CollapseWatchCollapseSuspected`` reaches Alertmanager, and Alertmanager delivers it to the
   collector's own webhook (``collector:9108/alerts``, as shipped), which stores it in the alert
   history in PostgreSQL;
6. ``down`` / ``up``: the history in PostgreSQL (runs and alert history), the collector's read
   positions (no re-collection) and Prometheus' samples survive in the named volumes.

Skips, saying why, only when no Docker Engine can be started. Cold (no images yet): debootstrap
and image builds take several minutes; warm, about three minutes (docs/containers.md).
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose import stack as cs
from ops_config import RULES_DIR, render_alertmanager_config, render_prometheus_config
from ops_stack import get, wait_for

from collector.demo import COLLAPSING, demo_series, publish_log

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.docker]

VERSIONS = ("v1", "v2", "v3", "v4", "v5")
KILLED = "v4"  # the version whose run the restart interrupts
# Its traffic is the real v4 outputs repeated, so that its run lasts seconds rather than the
# ~0.7 s of 96 lines: the restart must land while the run is still in progress.
KILLED_REPEAT = 30
ASSESSED = tuple(v for v in VERSIONS if v != KILLED)
ALERT = "CollapseWatchCollapseSuspected"
LOG_DIR_IN_CONTAINER = "/var/log/collapse-watch"
FINISHED = ("succeeded", "partial")


def _collector_config() -> dict[str, Any]:
    """The collector as a team would run it on request logs: one model, its log folder tailed."""
    return {
        "state_dir": "/var/lib/collapse-watch",
        "metrics_port": 9108,
        # as the shipped dashboards/collector/config.yml: every interface, /alerts behind the token
        "metrics_host": "0.0.0.0",
        "alert_receiver": {"bearer_token_file": "/etc/collapse-watch/secrets/alerts_token"},
        "models": [
            {
                "name": COLLAPSING,
                "source": {"type": "jsonl", "path": f"{LOG_DIR_IN_CONTAINER}/{COLLAPSING}-*.jsonl"},
                "schedule": {"every": "2s"},
            }
        ],
    }


class Running:
    """The started stack and what the test reads from it."""

    def __init__(self, stack: cs.Stack, logs: Path) -> None:
        self.stack = stack
        self.logs = logs
        self.series = demo_series()
        self.series[KILLED] = self.series[KILLED] * KILLED_REPEAT

    def wait(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        """``wait_for``; on a timeout the collector's last log lines say what it was doing."""
        try:
            return wait_for(what, check, timeout=timeout)
        except AssertionError as exc:
            tail = self.stack.compose("logs", "--no-color", "--tail", "40", "collector", check=False).stdout
            raise AssertionError(f"{exc}\ncollector log:\n{tail}") from None

    def url(self, service: str, port: int) -> str:
        return f"http://{self.stack.published(service, port)}"

    def runs(self) -> list[dict[str, Any]]:
        rows = self.stack.psql(
            "SELECT r.id, v.label, r.status, r.n_samples,"
            " (SELECT count(*) FROM samples s WHERE s.run_id = r.id),"
            " (SELECT count(*) FROM metric_values mv WHERE mv.run_id = r.id),"
            " coalesce((SELECT vd.status FROM verdicts vd WHERE vd.run_id = r.id), '')"
            " FROM runs r JOIN models m ON m.id = r.model_id JOIN model_versions v ON v.id = r.version_id"
            f" WHERE m.name = '{COLLAPSING}' ORDER BY r.id"
        )
        keys = ("id", "version", "status", "n_samples", "stored", "metric_values", "verdict")
        return [
            dict(zip(keys, (int(r[0]), r[1], r[2], int(r[3]), int(r[4]), int(r[5]), r[6]), strict=True))
            for r in rows
        ]

    def finished(self, version: str) -> dict[str, Any] | None:
        done = [r for r in self.runs() if r["version"] == version and r["status"] in FINISHED]
        return done[-1] if done and done[-1]["metric_values"] > 0 else None

    def alert_history(self) -> list[list[str]]:
        """The collector's stored Alertmanager notifications of the collapse alert for the model."""
        return self.stack.psql(
            "SELECT status, alertname, model, receiver FROM alert_notifications"
            f" WHERE alertname = '{ALERT}' AND model = '{COLLAPSING}' ORDER BY id"
        )

    def publish(self, version: str) -> None:
        publish_log(self.logs, version, self.series[version])

    def prometheus(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = json.loads(get(f"{self.url('prometheus', 9090)}{path}{query}"))
        assert body["status"] == "success", body
        return body["data"]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    reason = cs.ensure_docker()
    if reason:
        pytest.skip(f"no Docker Engine: {reason}")
    if cs.compose_command() is None:
        pytest.fail("no compose implementation (apt-get install docker-compose; .ci/run installs it)")
    wheels = cs.find_links_dir()
    if wheels is None:
        pytest.fail(f"no local wheel {cs.TORCH_WHEEL} (set COLLAPSE_WATCH_WHEELS to its folder)")
    cs.ensure_base_image()
    cs.ensure_python_image()

    work = tmp_path_factory.mktemp("compose")
    work.chmod(0o755)  # bind-mounted into containers that run as non-root users
    logs = work / "logs"
    logs.mkdir(mode=0o755)
    (work / "collector.yml").write_text(yaml.safe_dump(_collector_config()))
    prom = render_prometheus_config(
        work / "prometheus", "collector:9108", "alertmanager:9093", interval="1s", alert_for="1s"
    )
    cfg = yaml.safe_load(prom.read_text())
    cfg["rule_files"] = ["/etc/prometheus/rules/*.yml"]  # where the override mounts the rendered rules
    prom.write_text(yaml.safe_dump(cfg, sort_keys=False))
    gateway = cs.bridge_gateway()
    # The shipped receivers' webhook (the collector's /alerts); only the timings shrink.
    render_alertmanager_config(
        work / "alertmanager",
        "http://collector:9108/alerts",
        token_file=Path("/etc/alertmanager/secrets/collector_alerts_token"),  # as compose mounts it
    )
    for path in work.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)

    # a real secret, as README says to make one: the shipped example token is a placeholder the
    # collector refuses to start on
    token = work / "alerts_token"
    token.write_text(secrets.token_hex(32) + "\n")
    token.chmod(0o644)
    stack = cs.Stack(
        project=f"cwtest{uuid.uuid4().hex[:8]}",
        env={**cs.stack_env(work, gateway), "COLLAPSE_WATCH_ALERTS_TOKEN_FILE": str(token)},
    )
    try:
        with cs.serve_find_links(wheels, gateway) as find_links:
            stack.env["CW_TEST_FIND_LINKS"] = find_links
            stack.compose("build", *stack.services, timeout=1800)
        result = Running(stack, logs)
        result.publish(VERSIONS[0])
        stack.compose("up", "-d", *stack.services, timeout=600)
        stack.wait_healthy()
        yield result
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", timeout=300, check=False)


def test_image_runs_non_root_from_the_wheel_and_migrated_the_database(running: Running) -> None:
    from alembic.script import ScriptDirectory

    from collector.store.migrate import migrations_dir

    out = running.stack.compose(
        "exec", "-T", "collector", "python3", "-c",
        "import os; from collector.store.migrate import migrations_dir; print(os.getuid(), migrations_dir())",
    ).stdout.split()  # fmt: skip
    assert out[0] != "0", "the collector runs as root"
    assert out[1].endswith("site-packages/collector/_migrations"), out[1]
    head = ScriptDirectory(str(migrations_dir())).get_current_head()
    assert running.stack.psql("SELECT version_num FROM alembic_version") == [[head]]


def test_tailed_log_runs_are_stored_and_a_restart_mid_run_loses_nothing(running: Running) -> None:
    def collect(version: str) -> dict[str, Any]:
        if not (running.logs / f"{COLLAPSING}-{version}.jsonl").exists():
            running.publish(version)
        run = running.wait(f"a finished run of {version}", lambda: running.finished(version), timeout=300)
        assert run["stored"] == run["n_samples"] == len(running.series[version]), run
        return run

    for version in VERSIONS[: VERSIONS.index(KILLED)]:
        collect(version)

    # Restart with no grace (SIGKILL) while the run of KILLED is in progress (its samples stored
    # batch by batch with the log position, its metrics not yet computed).
    running.publish(KILLED)
    (caught,) = wait_for(
        f"the run of {KILLED} in progress",
        lambda: [r for r in running.runs() if r["version"] == KILLED and r["status"] == "running"],
        timeout=60,
    )
    running.stack.compose("restart", "-t", "0", "collector")
    running.stack.wait_healthy(["collector"])

    def settled() -> list[dict[str, Any]] | None:
        runs = running.runs()
        if any(r["status"] == "running" for r in runs):
            return None
        stored = sum(r["stored"] for r in runs if r["version"] == KILLED)
        return runs if stored >= len(running.series[KILLED]) else None

    runs = running.wait(f"every line of {KILLED} stored, no run in progress", settled, timeout=180)
    assert next(r for r in runs if r["id"] == caught["id"])["status"] == "interrupted", (caught, runs)
    assert sum(r["stored"] for r in runs if r["version"] == KILLED) == len(running.series[KILLED]), runs

    collect(VERSIONS[-1])  # the next version after the restart: collected and judged
    judged = running.wait(  # the assessment (bootstrap comparisons) follows the run's commit
        f"the verdict on {VERSIONS[-1]}",
        lambda: (run := running.finished(VERSIONS[-1])) and run["verdict"] and run,
        timeout=300,
    )
    assert judged["verdict"] == "collapse_suspected", running.runs()
    for version in ASSESSED:
        stored = sum(r["stored"] for r in running.runs() if r["version"] == version)
        assert stored == len(running.series[version]), (version, running.runs())


def test_prometheus_scrapes_the_collector_and_the_collapse_alert_is_delivered(running: Running) -> None:
    wait_for("every version collected", lambda: all(running.finished(v) for v in ASSESSED), timeout=600)

    targets = running.prometheus("/api/v1/targets")["activeTargets"]
    collector = [t for t in targets if t["labels"]["job"] == "collapse-watch"]
    assert collector, targets
    wait_for(
        "the collector target up",
        lambda: all(t["health"] == "up" for t in running.prometheus("/api/v1/targets")["activeTargets"]),
    )

    shipped = {
        g["name"]: [r.get("alert") or r.get("record") for r in g["rules"]]
        for f in sorted(RULES_DIR.glob("*.rules.yml"))
        for g in yaml.safe_load(f.read_text())["groups"]
    }
    loaded = {
        g["name"]: [r["name"] for r in g["rules"]] for g in running.prometheus("/api/v1/rules")["groups"]
    }
    assert loaded == shipped

    am = running.url("alertmanager", 9093)

    def alert_in_alertmanager() -> list[dict[str, Any]]:
        alerts = json.loads(get(f"{am}/api/v2/alerts"))
        return [
            a
            for a in alerts
            if a["labels"].get("alertname") == ALERT and a["labels"].get("model") == COLLAPSING
        ]

    (alert,) = wait_for(f"{ALERT} in Alertmanager", alert_in_alertmanager, timeout=120)
    assert alert["status"]["state"] == "active", alert
    stored = running.wait(f"{ALERT} in the collector's alert history", running.alert_history, timeout=120)
    assert stored[0][0] == "firing" and stored[0][2] == COLLAPSING, stored


def test_history_survives_down_and_up(running: Running) -> None:
    wait_for("every version collected", lambda: all(running.finished(v) for v in ASSESSED), timeout=600)
    before = running.runs()
    alerts_before = running.wait("the alert history", running.alert_history, timeout=120)
    seen = wait_for(
        "collapse_suspected scraped",
        lambda: running.prometheus("/api/v1/query", query="collapse_watch_collapse_suspected == 1")["result"],
        timeout=120,
    )
    scraped_at = str(seen[0]["value"][0])

    running.stack.compose("down", timeout=300)
    running.stack.compose("up", "-d", *running.stack.services, timeout=600)
    running.stack.wait_healthy()
    time.sleep(6)  # three scheduler ticks: the tail offsets survived, so nothing is collected again

    assert running.runs() == before
    assert running.alert_history()[: len(alerts_before)] == alerts_before
    again = running.prometheus(
        "/api/v1/query", query="collapse_watch_collapse_suspected == 1", time=scraped_at
    )["result"]
    assert [r["metric"]["model"] for r in again] == [COLLAPSING]
