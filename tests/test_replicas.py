"""Three `collapse-watch run` replicas on one real PostgreSQL, one of them SIGKILLed mid-run.

The fleet: ``smol`` is the real SmolLM2 server (tests/llm_server.py) behind the ``openai`` source;
``log`` tails a JSONL request log that a thread keeps appending to.  Every replica has the same
config (its own /metrics port, as separate pods or hosts would).  Each replica logs every lease it
takes (``<model> at <tick>: lease taken by <host:pid>``), so the claims of all three are read back
from their logs and checked against the runs stored in the database.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from collector.store.api import Store
from collector.store.migrate import upgrade
from tests import llm_server as served
from tests.llm_server import LLMServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

smollm2_server = served.smollm2_server
llm_server = served.llm_server

PG = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
SMOL_EVERY = 4  # seconds
LOG_EVERY = 2
PROMPTS = ["Name a colour.", "Write one sentence about the sea."]
CLAIM = re.compile(r"(\S+) at (\S+): lease taken by (\S+)")


def write_config(tmp_path: Path, db_url: str, llm: LLMServer, log: Path) -> Path:
    probes = tmp_path / "probes.txt"
    probes.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    lexical = ["distinct_1", "distinct_2", "length_mean"]
    doc = {
        "database_url": db_url,
        "metrics_host": "127.0.0.1",
        "state_dir": str(tmp_path / "state"),
        "models": [
            {
                "name": "smol",
                "source": {
                    "type": "openai",
                    "base_url": llm.base_url,
                    "model": llm.model,
                    "timeout_seconds": 60,
                    "max_retries": 1,
                    "concurrency": 2,
                },
                "version": "v1",
                "schedule": {"every": f"{SMOL_EVERY}s"},
                "samples_per_prompt": 1,
                "min_samples": 1,
                "probes": str(probes),
                "decoding": {"temperature": 1.0, "max_tokens": 8},
                "metrics": lexical,
            },
            {
                "name": "log",
                "source": {"type": "jsonl", "path": str(log)},
                "schedule": {"every": f"{LOG_EVERY}s"},
                "min_samples": 1,
                "metrics": lexical,
            },
        ],
    }
    path = tmp_path / "cw.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


class Appender(threading.Thread):
    """Appends one complete JSONL request line every ``pause`` seconds until stopped."""

    def __init__(self, path: Path, pause: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.path, self.pause = path, pause
        self.written: list[str] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            while not self.stopped.is_set():
                i = len(self.written)
                output = f"logged answer number {i} about {'the sea' if i % 2 else 'a colour'}"
                row = {"prompt": PROMPTS[i % 2], "output": output, "version": "v1", "prompt_id": f"p{i % 2}"}
                f.write(json.dumps(row) + "\n")
                f.flush()
                self.written.append(output)
                time.sleep(self.pause)


def lease_rows(store: Store) -> dict[str, dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT model, last_tick, holder, claimed_at, released_at FROM collection_leases")
        )
        return {r.model: dict(r._mapping) for r in rows}


def runs_of(store: Store, model: str) -> list[dict[str, Any]]:
    q = text(
        "SELECT r.id, r.status, r.started_at, r.finished_at, r.heartbeat_at FROM runs r "
        "JOIN models mo ON mo.id = r.model_id WHERE mo.name = :m ORDER BY r.started_at"
    )
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q, {"m": model})]


def claims(logs: list[Path]) -> list[tuple[str, datetime, str]]:
    found = []
    for path in logs:
        for m in CLAIM.finditer(path.read_text(encoding="utf-8", errors="replace")):
            found.append((m.group(1), datetime.fromisoformat(m.group(2)), m.group(3)))
    return found


def wait_for(condition: Any, timeout: float, what: str, procs: list[subprocess.Popen[bytes]]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        assert all(p.poll() is None for p in procs), f"a replica died while waiting for {what}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@PG
def test_three_replicas_collect_each_tick_once_and_survive_a_sigkill(
    llm_server: LLMServer, db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "requests.jsonl"
    log.touch()
    config = write_config(tmp_path, db_url, llm_server, log)
    upgrade(db_url)
    store = Store(db_url)
    appender = Appender(log)
    appender.start()

    logs = [tmp_path / f"replica-{i}.log" for i in range(3)]
    procs = []
    for path in logs:
        with path.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "collector",
                        "run",
                        "-c",
                        str(config),
                        "--metrics-port",
                        str(free_port()),
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "COLUMNS": "200"},
                )
            )
    by_holder = {f"{os.uname().nodename}:{p.pid}": p for p in procs}
    try:
        # wait for a completed run of smol, then for a replica to be in the middle of the next one
        wait_for(lambda: any(r["status"] == "succeeded" for r in runs_of(store, "smol")), 240, "a run", procs)

        def victim_mid_run() -> str | None:
            smol = lease_rows(store).get("smol")
            if smol is None or smol["released_at"] is not None or smol["holder"] not in by_holder:
                return None
            return smol["holder"]  # whatever else it is doing (a log run too, maybe): it dies now

        victim = wait_for(victim_mid_run, 60, "a replica mid-run", procs)
        by_holder[victim].send_signal(signal.SIGKILL)
        killed_at = datetime.now(UTC)
        by_holder[victim].wait(timeout=30)
        survivors = [p for h, p in by_holder.items() if h != victim]

        # a survivor takes smol over (the tick in progress or the next) and completes a run of it
        def taken_over() -> bool:
            return any(m == "smol" and h != victim and t > last_claim(victim) for m, t, h in claims(logs))

        def last_claim(holder: str) -> datetime:
            return max(t for m, t, h in claims(logs) if m == "smol" and h == holder)

        wait_for(taken_over, SMOL_EVERY * 3 + 60, "failover", survivors)
        wait_for(
            lambda: any(
                r["status"] == "succeeded" and r["started_at"] > killed_at for r in runs_of(store, "smol")
            ),
            120,
            "a run after the failover",
            survivors,
        )
        appender.stopped.set()
        appender.join(timeout=10)
        n_written = len(appender.written)
        wait_for(
            lambda: stored_outputs(store) and len(set(stored_outputs(store))) >= n_written,
            60,
            "the last log lines",
            survivors,
        )
    finally:
        appender.stopped.set()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    outputs = {p.pid: path.read_text(errors="replace") for p, path in zip(procs, logs, strict=True)}
    for h, p in by_holder.items():
        if h != victim:
            assert p.returncode == 0, outputs[p.pid][-3000:]

    all_claims = claims(logs)
    # 1. each (model, tick) was claimed by exactly one replica, and more than one replica took part
    per_tick = Counter((m, t) for m, t, _ in all_claims)
    assert all(n == 1 for n in per_tick.values()), [k for k, n in per_tick.items() if n > 1]
    smol_claims = sorted((t, h) for m, t, h in all_claims if m == "smol")
    assert len({h for _, h in smol_claims} | {h for m, _, h in all_claims if m == "log"}) >= 2

    # 2. one run per claim of smol (the killed one may have died before its run row), no overlap
    smol_runs = runs_of(store, "smol")
    assert len(smol_claims) - 1 <= len(smol_runs) <= len(smol_claims), (smol_runs, smol_claims)
    for before, after in itertools.pairwise(smol_runs):
        # a killed run's finished_at is when a survivor closed it; its last sign of life is the heartbeat
        end = (
            before["heartbeat_at"] or before["started_at"]
            if before["status"] == "interrupted"
            else before["finished_at"]
        )
        assert after["started_at"] >= end, (before, after)
    # the killed replica's run (if it had stored anything) was closed when a survivor took over
    assert all(r["status"] != "running" for r in smol_runs), smol_runs

    # 3. failover within one interval: a survivor claimed a tick at most one interval after the kill
    #    (the victim held smol until it died, so every later claim was made after the kill)
    victim_last = max(t for t, h in smol_claims if h == victim)
    first_after = min((t, h) for t, h in smol_claims if t > victim_last)
    assert first_after[1] != victim
    assert first_after[0] <= killed_at + timedelta(seconds=SMOL_EVERY), (killed_at, smol_claims)

    # 4. every log line stored exactly once
    stored = stored_outputs(store)
    assert len(stored) == len(set(stored)), Counter(stored).most_common(3)
    assert sorted(stored) == sorted(appender.written), (len(stored), n_written)


def stored_outputs(store: Store) -> list[str]:
    q = text(
        "SELECT t.body FROM samples s JOIN runs r ON r.id = s.run_id JOIN models mo ON mo.id = r.model_id "
        "JOIN texts t ON t.id = s.text_id WHERE mo.name = 'log'"
    )
    with store.engine.connect() as conn:
        return [row[0] for row in conn.execute(q)]
