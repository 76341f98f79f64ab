"""A PostgreSQL outage during a pass, and SIGHUP, against the real `collapse-watch run` (issue #22).

The collector reaches PostgreSQL through a loopback TCP proxy (``tests.tcp_proxy``) that the test
cuts while a run is sampling and restores a few seconds later.  The run cannot store its samples or
its close during the outage; once the database answers again the still-living process closes it
(``Runner.close_pending``, retried every ``CLOSE_RETRY_SECONDS``): no run stays ``running``, no
restart needed.  SIGHUP then stops the process gracefully (exit 0; docs/reliability.md); on SQLite,
SIGHUP during a request ends the run `interrupted`.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from tests.fault_servers import FaultServer, wait_for
from tests.tcp_proxy import TcpProxy
from tests.test_faults import migrated, openai_model, probes_file, q, start, write_config

OUTAGE_SECONDS = 4.0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_run_cut_by_a_database_outage_is_closed_when_it_returns_and_sighup_stops(
    db_url: str, tmp_path: Path
) -> None:
    direct = migrated(db_url)
    proxy = TcpProxy(5432)
    cut_at: list[float] = []

    def outage(n: int) -> None:  # the first request of the run takes the database away
        if n == 1:
            proxy.cut()
            cut_at.append(time.monotonic())
            threading.Timer(OUTAGE_SECONDS, proxy.restore).start()

    server = FaultServer("ok", on_request=outage)
    log = tmp_path / "run.log"
    try:
        model = openai_model("bot", server.base_url, probes_file(tmp_path, 4))
        model["schedule"] = {"every": "1h"}
        via_proxy = db_url.replace(":5432/", f":{proxy.port}/")
        config = write_config(tmp_path / "cw.yml", via_proxy, [model])
        proc = start("run", "--config", str(config), log=log)
        try:
            assert wait_for(lambda: bool(cut_at), 120), log.read_text()[-3000:]
            closed = wait_for(
                lambda: [r["status"] for r in q(direct, "SELECT status FROM runs")] not in ([], ["running"]),
                90,
                step=0.5,
            )
            took = time.monotonic() - cut_at[0]
            assert closed, (q(direct, "SELECT status, error FROM runs"), log.read_text()[-3000:])
            assert proc.poll() is None, "the collector must live on through the outage"
            [run] = q(direct, "SELECT status, error FROM runs")
            print(f"outage of {OUTAGE_SECONDS:g}s: run closed {took:.1f}s after the cut as {run['status']}")
            assert run["status"] in ("failed", "partial", "succeeded"), run
            if run["status"] == "failed":
                assert "storing samples failed" in (run["error"] or "") or "OperationalError" in (
                    run["error"] or ""
                ), run
            sent = time.monotonic()
            proc.send_signal(signal.SIGHUP)
            assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
            print(f"SIGHUP: exit 0 after {time.monotonic() - sent:.1f}s")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        server.close()
        proxy.close()
    text = log.read_text()
    assert "closed run" in text and "received SIGHUP" in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]  # an outage is said in one line, not a stack
    assert q(direct, "SELECT count(*) AS n FROM runs WHERE status = 'running'")[0]["n"] == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sighup_during_a_request_ends_the_run_interrupted(db_url: str, tmp_path: Path) -> None:
    """Before issue #22 SIGHUP killed `run` silently and left its run `running`."""
    store = migrated(db_url)
    server = FaultServer("drip")
    log = tmp_path / "run.log"
    try:
        model = openai_model("slow", server.base_url, probes_file(tmp_path), timeout_seconds=120)
        model["schedule"] = {"every": "1h"}
        config = write_config(tmp_path / "cw.yml", db_url, [model], shutdown_grace_seconds=3)
        proc = start("run", "--config", str(config), log=log)
        try:
            assert wait_for(lambda: server.n >= 2, 120), log.read_text()[-3000:]
            sent = time.monotonic()
            proc.send_signal(signal.SIGHUP)
            assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        server.close()
    print(f"SIGHUP during a drip: exit 0 after {took:.1f}s")
    assert took < 10, took
    assert [r["status"] for r in q(store, "SELECT status FROM runs")] == ["interrupted"]
    assert "received SIGHUP" in log.read_text() and "Traceback" not in log.read_text()
