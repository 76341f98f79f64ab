"""/healthz and /readyz on the real server process (``collapse-watch serve-metrics`` / ``run``).

Faults are injected into the real database the server reads: its schema downgraded under it
(SQLite and PostgreSQL), and a PostgreSQL database that stops accepting connections. The
scheduler check runs a real ``CollectorScheduler``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import cli
from conftest import PG_BASE, _pg_admin
from ops_stack import free_port, wait_for
from sqlalchemy import text

from collector.config import Config
from collector.readout.health import SchedulerProbe, readiness
from collector.scheduler import CollectorScheduler
from collector.store import Store
from collector.store.migrate import current, downgrade, head, upgrade

pytestmark = pytest.mark.integration


def probe(url: str) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a GET, 5xx included."""
    return probe_within(url, 10)


def probe_within(url: str, timeout: float) -> tuple[int, dict[str, Any]]:
    """``probe`` with a kubelet-like timeout: no answer within ``timeout`` s raises (the test fails)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def start_server(url: str, log: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector",
            *args,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--database-url",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env=dict(os.environ),
    )
    base = f"http://127.0.0.1:{port}"
    wait_for("the server's /healthz", lambda: probe(f"{base}/healthz")[0] == 200, timeout=60)
    return proc, base


def start_run(url: str, workdir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`collapse-watch run` on a config of one hourly jsonl model (an empty log) on a free loopback
    port; returns at once (no wait), with the process and the listener's base URL."""
    port = free_port()
    config = workdir / "config.yml"
    source = {"type": "jsonl", "path": str(workdir / "outputs.jsonl")}
    model = {"name": "bot", "source": source, "schedule": {"every": "1h"}}
    config.write_text(
        json.dumps(
            {"database_url": url, "metrics_host": "127.0.0.1", "metrics_port": port, "models": [model]}
        )
    )
    (workdir / "outputs.jsonl").write_text("")
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env=dict(os.environ),
    )
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_readyz_follows_the_schema_revision(db_url: str, tmp_path: Path) -> None:
    """200 at head; 503 naming both revisions once the schema is downgraded under the running
    server; 200 again after ``db upgrade``. /healthz stays 200 throughout."""
    assert cli("db", "upgrade", "--database-url", db_url).returncode == 0
    proc, base = start_server(db_url, tmp_path / "server.log", "serve-metrics")
    try:
        status, body = probe(f"{base}/readyz")
        assert (status, body["status"], body["checks"]) == (200, "ready", {"database": "ok", "schema": "ok"})
        assert 0 <= body["checked_seconds_ago"] < 10  # the background check's latest result, and its age
        downgrade(db_url, "-1")
        status, body = wait_for("/readyz 503", lambda: (r := probe(f"{base}/readyz"))[0] == 503 and r)
        assert body["status"] == "not ready", body
        assert body["checks"]["database"] == "ok"
        assert head() in body["checks"]["schema"] and "collapse-watch db upgrade" in body["checks"]["schema"]
        assert probe(f"{base}/healthz") == (200, {"status": "ok"})  # alive: no restart for this
        assert cli("db", "upgrade", "--database-url", db_url).returncode == 0
        wait_for("/readyz 200 again", lambda: probe(f"{base}/readyz")[0] == 200)
    finally:
        stop(proc)


@pytest.fixture
def own_pg_database() -> Iterator[tuple[str, Any]]:
    """A PostgreSQL database of this test's own (its connections can be refused without touching
    anyone else's), and the admin engine; dropped after."""
    admin = _pg_admin()
    name = f"cw_readyz_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at {PG_BASE} unreachable: {exc}")
    try:
        yield PG_BASE.rsplit("/", 1)[0] + f"/{name}", admin
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


def test_readyz_is_503_while_the_database_refuses_connections(
    own_pg_database: tuple[str, Any], tmp_path: Path
) -> None:
    url, admin = own_pg_database
    name = url.rsplit("/", 1)[1]
    assert cli("db", "upgrade", "--database-url", url).returncode == 0
    proc, base = start_server(url, tmp_path / "server.log", "serve-metrics")
    try:
        assert probe(f"{base}/readyz")[0] == 200
        with admin.connect() as conn:  # the database goes away: new connections refused, open ones cut
            conn.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": name}
            )
        _, body = wait_for("/readyz 503", lambda: (r := probe(f"{base}/readyz"))[0] == 503 and r)
        # the server answered "FATAL: database ... is not currently accepting connections"
        assert body["checks"]["database"].startswith("refused: "), body
        assert "not currently accepting connections" in body["checks"]["database"]
        assert "schema" not in body["checks"]
        assert probe(f"{base}/healthz")[0] == 200
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        wait_for("/readyz 200 again", lambda: probe(f"{base}/readyz")[0] == 200)
    finally:
        stop(proc)


def test_readyz_needs_the_scheduler_running(tmp_path: Path) -> None:
    """``run``'s readiness: not started, running, then stopped (a real ``CollectorScheduler``)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    store = Store(url)
    cfg = Config.model_validate(
        {
            "database_url": url,
            "models": [
                {
                    "name": "bot",
                    "source": {"type": "jsonl", "path": str(tmp_path / "none.jsonl")},
                    "schedule": {"every": "1h"},
                }
            ],
        }
    )
    scheduler = SchedulerProbe()
    status, body = readiness(store, scheduler)
    assert status == 503 and body["checks"]["scheduler"] == "not started"
    sched = CollectorScheduler(cfg, lambda model, stop: None, run_at_start=False)
    sched.start()
    scheduler.attach(sched)
    assert readiness(store, scheduler) == (
        200,
        {"status": "ready", "checks": {"database": "ok", "schema": "ok", "scheduler": "ok"}},
    )
    sched.stop()
    status, body = readiness(store, scheduler)
    assert status == 503 and body["checks"]["scheduler"] == "stopped"


def test_run_is_ready_with_its_scheduler_and_alive_on_one_port(tmp_path: Path) -> None:
    """The real ``collapse-watch run``: /readyz names the scheduler and answers 200 once it runs."""
    log = tmp_path / "run.log"
    proc, base = start_run(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, log)
    try:
        wait_for("run's /readyz", lambda: probe(f"{base}/readyz")[0] == 200, timeout=120)
        assert probe(f"{base}/readyz")[1]["checks"] == {"database": "ok", "schema": "ok", "scheduler": "ok"}
        assert probe(f"{base}/healthz") == (200, {"status": "ok"})
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text()[-2000:]


def test_readyz_says_deploy_the_newer_image_when_the_database_is_ahead(tmp_path: Path) -> None:
    """A database migrated by a newer release (a revision this build does not ship) is not fixed by
    `db upgrade`: the advice names both revisions and says to deploy the newer image."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f0f0f0f0_from_the_future'"))
    status, body = readiness(store)
    assert status == 503 and body["checks"]["database"] == "ok"
    assert body["checks"]["schema"] == (
        f"database at revision f0f0f0f0_from_the_future, newer than this image's migrations "
        f"(head {head()}): deploy the newer image"
    )
    assert "db upgrade" not in body["checks"]["schema"]


def test_a_readiness_probe_logs_nothing_at_info(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Kubelet probes /readyz every few seconds: a probe must not add log lines (Alembic's
    'Context impl ...' / 'Will assume ... DDL' were two per probe)."""
    from collector.readout.server import serve_store_metrics

    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    server = serve_store_metrics(Store(url), host="127.0.0.1", port=0)
    try:
        caplog.clear()
        caplog.set_level(logging.DEBUG)
        for _ in range(3):
            assert probe(f"http://127.0.0.1:{server.server_port}/readyz")[0] == 200
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("comes_up", [True, False], ids=["database comes up", "stopped while waiting"])
def test_run_waits_for_a_database_that_is_down_at_start(
    own_pg_database: tuple[str, Any], tmp_path: Path, comes_up: bool
) -> None:
    """PostgreSQL unreachable when the pod starts (a real proxy refusing every connection): `run`
    does not exit; /healthz is 200, /readyz 503 naming the database; it retries with backoff and
    becomes ready, migrating and scheduling, once the database answers."""
    from sqlalchemy.engine import make_url
    from tcp_proxy import TcpProxy

    url, _admin = own_pg_database
    real = make_url(url)
    proxy = TcpProxy(real.port or 5432)
    proxy.cut()  # every connection refused from the start
    log = tmp_path / "run.log"
    proc, base = start_run(real.set(port=proxy.port).render_as_string(hide_password=False), tmp_path, log)

    def answers() -> bool:
        assert proc.poll() is None, f"run exited {proc.returncode}:\n{log.read_text()[-2000:]}"
        try:
            return probe(f"{base}/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_for("run's /healthz while the database is down", answers, timeout=120)
        status, body = probe(f"{base}/readyz")
        assert status == 503 and body["checks"]["database"].startswith("unreachable: "), body
        assert body["checks"]["scheduler"] == "not started"
        wait_for("a second try", lambda: "(try 2)" in log.read_text(), timeout=60)
        assert proc.poll() is None
        if not comes_up:  # SIGTERM while waiting: a clean exit
            proc.terminate()
            assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
            return
        proxy.restore()
        wait_for(
            "run's /readyz after the database came up", lambda: probe(f"{base}/readyz")[0] == 200, timeout=120
        )
        assert probe(f"{base}/readyz")[1]["checks"] == {"database": "ok", "schema": "ok", "scheduler": "ok"}
        assert current(url) == head()  # it migrated once the database answered
    finally:
        stop(proc)
        proxy.close()
    text_ = log.read_text()
    assert proc.returncode == 0, text_[-2000:]
    assert "not usable at start" in text_
    assert ("database reachable and migrated after" in text_) == comes_up


def test_serve_metrics_waits_for_a_database_that_is_down_at_start(
    own_pg_database: tuple[str, Any], tmp_path: Path
) -> None:
    """The exporter's pod likewise: served while PostgreSQL refuses, ready once it answers."""
    from sqlalchemy.engine import make_url
    from tcp_proxy import TcpProxy

    url, _admin = own_pg_database
    real = make_url(url)
    proxy = TcpProxy(real.port or 5432)
    proxy.cut()
    log = tmp_path / "server.log"
    proc, base = start_server(
        real.set(port=proxy.port).render_as_string(hide_password=False), log, "serve-metrics"
    )
    try:
        status, body = probe(f"{base}/readyz")
        assert status == 503 and body["checks"]["database"].startswith("unreachable: "), body
        wait_for("the background open's first try", lambda: "not usable at start" in log.read_text())
        proxy.restore()
        wait_for(
            "/readyz 200 once the database answers", lambda: probe(f"{base}/readyz")[0] == 200, timeout=120
        )
        assert current(url) == head()
    finally:
        stop(proc)
        proxy.close()
    assert "not usable at start" in log.read_text()


def test_a_hung_database_never_blocks_the_probes(own_pg_database: tuple[str, Any], tmp_path: Path) -> None:
    """A database that accepts connections and never answers (a real proxy holding every byte):
    30 /readyz probes at once all answer within a probe's 5 s (503, naming the database), and
    /healthz keeps answering; the probes never pile up on the database."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy.engine import make_url
    from tcp_proxy import TcpProxy

    url, _admin = own_pg_database
    assert cli("db", "upgrade", "--database-url", url).returncode == 0
    real = make_url(url)
    proxy = TcpProxy(real.port or 5432)
    proc, base = start_server(
        real.set(port=proxy.port).render_as_string(hide_password=False),
        tmp_path / "server.log",
        "serve-metrics",
    )
    try:
        wait_for("/readyz 200", lambda: probe(f"{base}/readyz")[0] == 200)
        proxy.hang()

        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(lambda _: probe_within(f"{base}/readyz", 5), range(30)))
        assert all(status in (200, 503) for status, _ in answers), answers
        assert probe_within(f"{base}/healthz", 2) == (200, {"status": "ok"})
        _, body = wait_for("/readyz 503", lambda: (r := probe_within(f"{base}/readyz", 5))[0] == 503 and r)
        assert body["checks"]["database"].startswith("unreachable: "), body
        for _ in range(10):  # still answering, every time, while the database hangs
            assert probe_within(f"{base}/healthz", 2)[0] == 200
            assert probe_within(f"{base}/readyz", 5)[0] == 503
        proxy.restore()
        wait_for(
            "/readyz 200 once the database answers", lambda: probe(f"{base}/readyz")[0] == 200, timeout=60
        )
    finally:
        stop(proc)
        proxy.close()


@pytest.mark.parametrize("command", ["run", "serve-metrics"])
def test_a_database_hung_at_start_leaves_the_port_open_and_sigterm_ends_it(
    own_pg_database: tuple[str, Any], tmp_path: Path, command: str
) -> None:
    """A database that accepts and never answers when the pod starts: the listener is up at once
    (/healthz 200, /readyz 503 naming the database), and SIGTERM ends the process promptly, exit 0."""
    from sqlalchemy.engine import make_url
    from tcp_proxy import TcpProxy

    url, _admin = own_pg_database
    real = make_url(url)
    proxy = TcpProxy(real.port or 5432)
    proxy.hang()
    # a connect that would wait 10 minutes: the listener and SIGTERM must not wait on it
    hung_url = real.set(port=proxy.port, query={"connect_timeout": "600"}).render_as_string(
        hide_password=False
    )
    log = tmp_path / "server.log"
    try:
        if command == "serve-metrics":
            proc, base = start_server(hung_url, log, "serve-metrics")
        else:
            proc, base = start_run(hung_url, tmp_path, log)
            wait_for("run's /healthz", lambda: probe_within(f"{base}/healthz", 2)[0] == 200, timeout=60)
        assert probe_within(f"{base}/healthz", 2) == (200, {"status": "ok"})
        status, body = probe_within(f"{base}/readyz", 5)
        assert status == 503, body
        assert body["checks"]["database"].startswith(("connecting", "unreachable: ")), body
        proc.terminate()
        assert proc.wait(timeout=10) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proxy.close()


def test_readyz_says_refused_when_the_server_answers_no() -> None:
    """A wrong database name: the server answered (FATAL), so it is "refused", not "unreachable"."""
    from sqlalchemy.engine import make_url

    url = make_url(PG_BASE).set(database=f"cw_missing_{uuid.uuid4().hex[:8]}")
    status, body = readiness(Store(url.render_as_string(hide_password=False)))
    if "Connection refused" in body["checks"]["database"]:
        pytest.skip(f"PostgreSQL at {PG_BASE} unreachable")
    assert status == 503
    assert body["checks"]["database"].startswith("refused: "), body
    assert f'database "{url.database}" does not exist' in body["checks"]["database"]


def test_a_database_outage_is_logged_once_not_per_scrape(
    own_pg_database: tuple[str, Any], tmp_path: Path
) -> None:
    """Twelve scrapes while PostgreSQL refuses: one line when the outage starts (no traceback),
    one when it ends, nothing per scrape in between (each scrape used to log ~110 lines)."""
    from sqlalchemy.engine import make_url
    from tcp_proxy import TcpProxy

    url, _admin = own_pg_database
    assert cli("db", "upgrade", "--database-url", url).returncode == 0
    real = make_url(url)
    proxy = TcpProxy(real.port or 5432)
    log = tmp_path / "server.log"
    proc, base = start_server(
        real.set(port=proxy.port).render_as_string(hide_password=False), log, "serve-metrics"
    )

    def scrape() -> str:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as res:
            return res.read().decode()

    try:
        assert "collapse_watch_up 1.0" in scrape()
        wait_for("the background open at start", lambda: "database open and migrated" in log.read_text())
        before = len(log.read_text().splitlines())
        proxy.cut()
        for _ in range(12):
            assert "collapse_watch_up 0.0" in scrape()
        proxy.restore()
        wait_for("/metrics reads the store again", lambda: "collapse_watch_up 1.0" in scrape())
        scrape()
    finally:
        stop(proc)
        proxy.close()
    lines = log.read_text().splitlines()[before:]
    outage = [line for line in lines if "collapse_watch.exporter" in line]
    assert len(outage) == 2, "\n".join(lines)
    assert "cannot read the store for /metrics:" in outage[0] and "readable again after" in outage[1]
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    ours = [line for line in lines if "alembic" not in line]  # the background migration at start
    assert len(ours) <= 4, "\n".join(ours)  # the two outage lines, the stop lines
