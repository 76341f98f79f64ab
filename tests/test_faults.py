"""Fault injection against the real CLI processes (issue #11), on SQLite and PostgreSQL.

Each test starts ``python -m collector`` as a separate process and injects one fault: kill -9 at
random points while a log is appended, poison lines, an endpoint that drips one byte every 0.5 s,
SIGTERM during such a drip or a hang, a held SQLite write lock, an API key with a newline, invalid
Unicode, a busy port, 200,000 lines.  The invariants checked afterwards:

* every log line is stored exactly once, or quarantined once with its reason;
* after a restart no run is left non-terminal (``running``);
* no secret appears in the database, the logs, the output or ``/metrics``;
* requests and shutdowns end within their deadlines; peak memory stays bounded.

The long soak (20 kills per database) and the 200,000-line run are ``slow`` and run only with
``COLLAPSE_WATCH_SOAK=1``; the short kill test (3 kills per database) runs in the normal suite.  Measured outcomes are in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import generate_latest
from sqlalchemy import text

from collector.store.api import Store
from collector.store.migrate import upgrade
from tests.cli_process import cli as run_cli
from tests.fault_servers import FaultServer, wait_for

LEXICAL = ["distinct_1", "distinct_2"]
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
SOAK = pytest.mark.skipif(
    os.environ.get("COLLAPSE_WATCH_SOAK") != "1",
    reason="long soak: set COLLAPSE_WATCH_SOAK=1 (8-12 min per database on a loaded 2-core machine)",
)


# -- helpers ---------------------------------------------------------------------------------------


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The real CLI with wide tables (its error and status lines are matched whole)."""
    return run_cli(*args, env={"COLUMNS": "200", **(env or {})}, timeout=timeout)


def start(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "collector", *args],
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, db_url: str, models: list[dict[str, Any]], **top: Any) -> Path:
    doc = {
        "database_url": db_url,
        "metrics_host": "127.0.0.1",
        "metrics_port": free_port(),
        "models": models,
        **top,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def jsonl_model(name: str, log: Path, **over: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"type": "jsonl", "path": str(log)},
        "metrics": LEXICAL,
        "min_samples": 1,
        **over,
    }


def openai_model(name: str, base_url: str, probes: Path, **source: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": "v1",
        "source": {
            "type": "openai",
            "base_url": base_url,
            "model": "fault",
            "max_retries": 0,
            "concurrency": 2,
            **source,
        },
        "probes": str(probes),
        "samples_per_prompt": 1,
        "min_samples": 1,
        "metrics": LEXICAL,
    }


def probes_file(tmp_path: Path, n: int = 2) -> Path:
    p = tmp_path / "probes.txt"
    p.write_text("".join(f"Say something about topic {i}.\n" for i in range(n)), encoding="utf-8")
    return p


def q(store: Store, sql: str, **params: Any) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def seconds_between(a: Any, b: Any) -> float:
    """b - a for timestamps read by raw SQL (datetime on PostgreSQL, ISO text on SQLite)."""
    a, b = (datetime.fromisoformat(x) if isinstance(x, str) else x for x in (a, b))
    return (b - a).total_seconds()


def migrated(db_url: str) -> Store:
    upgrade(db_url)
    return Store(db_url)


def good_line(n: int) -> str:
    return json.dumps({"prompt": f"prompt {n % 7}", "output": f"unique output number {n}", "version": "v1"})


POISON = [
    '{"prompt": "cut", "output": ',
    "[1, 2, 3]",
    '{"prompt": "no output"}',
    json.dumps({"prompt": "x", "output": "y", "version": "v" * 250}),
    json.dumps({"prompt": "x", "output": "y", "version": "v1", "prompt_id": "k" * 250}),
]


def assert_exactly_once(store: Store, n_good: int, n_poison: int) -> None:
    """Every good line is one sample (outputs are unique), every poison line one quarantine row."""
    rows = q(
        store, "SELECT t.body, count(*) AS n FROM samples s JOIN texts t ON t.id = s.text_id GROUP BY t.body"
    )
    counts = {r["body"]: r["n"] for r in rows}
    dup = {b: n for b, n in counts.items() if n != 1}
    assert not dup, f"stored more than once: {list(dup.items())[:5]}"
    expected = {f"unique output number {n}" for n in range(n_good)}
    assert set(counts) == expected, (len(counts), n_good, sorted(expected - set(counts))[:5])
    quarantined = q(store, "SELECT location, count(*) AS n FROM quarantine GROUP BY location")
    assert all(r["n"] == 1 for r in quarantined) and len(quarantined) == n_poison
    assert q(store, "SELECT count(*) AS n FROM runs WHERE status = 'running'")[0]["n"] == 0


class Appender(threading.Thread):
    """Appends good lines (and every ``poison_every``-th a poison line) to a log until stopped."""

    def __init__(self, log: Path, per_second: float = 150, poison_every: int = 53) -> None:
        super().__init__(daemon=True)
        self.log, self.per_second, self.poison_every = log, per_second, poison_every
        self.n_good = self.n_poison = 0
        self.halt = threading.Event()

    def run(self) -> None:
        with self.log.open("a", encoding="utf-8") as f:
            i = 0
            while not self.halt.is_set():
                i += 1
                if i % self.poison_every == 0:
                    line = POISON[self.n_poison % len(POISON)]
                    self.n_poison += 1
                else:
                    line = good_line(self.n_good)
                    self.n_good += 1
                f.write(line + "\n")
                f.flush()
                time.sleep(1 / self.per_second)


# -- kill -9 while a log is appended ---------------------------------------------------------------


def kill_soak(db_url: str, tmp_path: Path, kills: int, seed: int) -> dict[str, Any]:
    store = migrated(db_url)
    log = tmp_path / "requests.jsonl"
    log.touch()
    config = write_config(tmp_path / "cw.yml", db_url, [jsonl_model("tail", log, schedule={"every": "1s"})])
    appender = Appender(log)
    appender.start()
    rng = random.Random(seed)
    killed_during_run = 0
    slowest_scrape = 0.0
    port = yaml.safe_load(config.read_text())["metrics_port"]
    try:
        for _ in range(kills):
            proc = start("run", "--config", str(config), log=tmp_path / "run.log")
            owned = f"%:{proc.pid}:%"
            assert wait_for(
                lambda o=owned: (
                    q(store, "SELECT count(*) AS n FROM runs WHERE owner LIKE :o", o=o)[0]["n"] > 0
                ),
                120,
            ), (tmp_path / "run.log").read_text()[-3000:]
            t0 = time.monotonic()
            scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            slowest_scrape = max(slowest_scrape, time.monotonic() - t0)
            assert scrape.status_code == 200 and "collapse_watch_quarantined_records_total" in scrape.text
            time.sleep(rng.uniform(0.0, 1.5))
            running = q(
                store, "SELECT count(*) AS n FROM runs WHERE owner LIKE :o AND status = 'running'", o=owned
            )
            killed_during_run += running[0]["n"] > 0
            proc.kill()
            proc.wait()
    finally:
        appender.halt.set()
        appender.join()
    done = cli("collect", "--config", str(config))  # the restart: reclaims, then drains the log
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "Traceback" not in done.stderr + (tmp_path / "run.log").read_text()
    assert_exactly_once(store, appender.n_good, appender.n_poison)
    interrupted = q(store, "SELECT count(*) AS n FROM runs WHERE status = 'interrupted'")[0]["n"]
    assert interrupted >= killed_during_run
    assert slowest_scrape < 2, slowest_scrape  # /metrics of the collector while it collects
    return {
        "slowest_scrape_s": round(slowest_scrape, 2),
        "lines": appender.n_good + appender.n_poison,
        "interrupted": interrupted,
        "killed_in_run": killed_during_run,
    }


def test_kill_9_while_a_log_is_appended(db_url: str, tmp_path: Path) -> None:
    print("kill -9 x3:", kill_soak(db_url, tmp_path, kills=3, seed=11))


@pytest.mark.slow
@SOAK
def test_kill_9_soak_twenty_kills(db_url: str, tmp_path: Path) -> None:
    print("kill -9 x20:", kill_soak(db_url, tmp_path, kills=20, seed=1111))


# -- poison lines and sources that cannot open ------------------------------------------------------


def test_poison_lines_and_an_unreachable_source_through_collect(db_url: str, tmp_path: Path) -> None:
    store = migrated(db_url)
    log = tmp_path / "requests.jsonl"
    lines = [good_line(0), *POISON[:2], good_line(1)]
    lines += [json.dumps({"prompt": "nul \u0000 here", "output": "unique output number 2", "version": "v1"})]
    lines += ['{"prompt": "lone \\ud800", "output": "unique output number 3", "version": "v1"}']
    lines += [*POISON[2:], good_line(4)]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    unreachable = {
        "name": "sqlsrc",
        "version": "v1",
        "source": {
            "type": "sql",
            "url": "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2",
            "query": "SELECT id, prompt, output FROM logs",
            "watermark_column": "id",
        },
    }
    config = write_config(
        tmp_path / "cw.yml",
        db_url,
        [
            jsonl_model("tail", log),
            jsonl_model("nothing", tmp_path / "none" / "*.jsonl", version="v1"),
            unreachable,
        ],
    )
    res = cli("collect", "--config", str(config))  # (a second pass storing nothing: test_reliability)
    assert res.returncode == 1, res.stdout + res.stderr  # the unreachable source failed
    assert "Traceback" not in res.stderr
    assert_exactly_once(store, 5, len(POISON))
    status = {
        r["name"]: r["statuses"]
        for r in q(
            store,
            "SELECT mo.name, r.status AS statuses FROM runs r JOIN models mo ON mo.id = r.model_id ORDER BY r.id",
        )
    }
    assert status == {"tail": "partial", "nothing": "no_data", "sqlsrc": "failed"}
    [err] = q(
        store,
        "SELECT r.error FROM runs r JOIN models mo ON mo.id = r.model_id WHERE mo.name = 'sqlsrc' LIMIT 1",
    )
    assert "query failed" in err["error"]


# -- deadlines and signals ---------------------------------------------------------------------------


@SQLITE
def test_a_dripping_endpoint_is_cut_at_the_total_deadline(db_url: str, tmp_path: Path) -> None:
    store = migrated(db_url)
    server = FaultServer("drip", drip_seconds=0.5)
    try:
        model = openai_model("drip", server.base_url, probes_file(tmp_path), timeout_seconds=2)
        config = write_config(tmp_path / "cw.yml", db_url, [model])
        res = cli("collect", "--config", str(config))
    finally:
        server.close()
    assert res.returncode == 1, res.stdout + res.stderr
    [run] = q(store, "SELECT status, started_at, finished_at FROM runs")
    errors = [r["error"] for r in q(store, "SELECT error FROM samples")]
    assert run["status"] == "failed" and len(errors) == 2
    assert all("no complete response within 2s" in e for e in errors), errors
    took = seconds_between(run["started_at"], run["finished_at"])
    print(f"drip: run took {took:.1f}s with timeout_seconds 2")
    assert took < 6, took  # a 2 s deadline, both requests in parallel (150 s before issue #11)


@pytest.mark.parametrize(
    ("db_url", "mode"), [("sqlite", "hang"), ("postgresql", "drip")], indirect=["db_url"]
)
def test_sigterm_during_a_slow_request_ends_run_within_the_grace(
    db_url: str, tmp_path: Path, mode: str
) -> None:
    """drip: the request is cancelled at the next byte; hang: nothing to cancel, so after the grace
    (3 s here) the run is marked interrupted and the process exits without waiting for the request."""
    store = migrated(db_url)
    server = FaultServer(mode)
    try:
        model = openai_model("slow", server.base_url, probes_file(tmp_path), timeout_seconds=120)
        model["schedule"] = {"every": "1h"}
        config = write_config(tmp_path / "cw.yml", db_url, [model], shutdown_grace_seconds=3)
        proc = start("run", "--config", str(config), log=tmp_path / "run.log")
        assert wait_for(lambda: server.n >= 2, 120), (tmp_path / "run.log").read_text()[-3000:]
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        server.close()
    print(f"SIGTERM during {mode}: exited after {took:.1f}s")
    assert took < 10, took  # a container runtime kills after 10 s
    [run] = q(store, "SELECT status, error FROM runs")
    assert run["status"] == "interrupted", run
    assert "Traceback" not in (tmp_path / "run.log").read_text()


# -- a held SQLite write lock -------------------------------------------------------------------------

HOLD = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")
"""


@SQLITE
def test_a_held_sqlite_write_lock_delays_but_loses_nothing(db_url: str, tmp_path: Path) -> None:
    store = migrated(db_url)
    log = tmp_path / "requests.jsonl"
    log.write_text("".join(good_line(n) + "\n" for n in range(40)), encoding="utf-8")
    config = write_config(tmp_path / "cw.yml", db_url, [jsonl_model("tail", log)])
    path = db_url.removeprefix("sqlite:///")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, path, "8"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        res = cli("collect", "--config", str(config))
    finally:
        holder.wait(timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert_exactly_once(store, 40, 0)
    assert [r["status"] for r in q(store, "SELECT status FROM runs")] == ["succeeded"]


# -- secrets ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # the leak is database-agnostic
def test_api_keys_with_newlines_never_leak(db_url: str, tmp_path: Path) -> None:
    store = migrated(db_url)
    trailing, inner = "sk-trail-SECRET-4242424242\n", "sk-inner-AAAAAAAAAA\nBBBBBBBBBBBB"
    env = {"CW_KEY_TRAIL": trailing, "CW_KEY_INNER": inner}
    server = FaultServer("ok")
    try:
        probes = probes_file(tmp_path)
        models = [
            openai_model("trail", server.base_url, probes, api_key_env="CW_KEY_TRAIL", timeout_seconds=20),
            openai_model("inner", server.base_url, probes, api_key_env="CW_KEY_INNER", timeout_seconds=20),
        ]
        config = write_config(tmp_path / "cw.yml", db_url, models)
        check = cli("config", "check", str(config), env=env)
        res = cli("collect", "--config", str(config), env=env)
    finally:
        server.close()
    assert check.returncode == 2 and "CW_KEY_INNER holds whitespace or control characters" in check.stderr
    assert res.returncode == 1, res.stdout + res.stderr  # "inner" cannot run
    assert set(server.auth) == {"Bearer sk-trail-SECRET-4242424242"}  # stripped, and sent only for "trail"
    runs = {
        r["name"]: r
        for r in q(
            store, "SELECT mo.name, r.status, r.error FROM runs r JOIN models mo ON mo.id = r.model_id"
        )
    }
    assert runs["trail"]["status"] == "succeeded" and runs["inner"]["status"] == "failed"
    assert (
        "holds whitespace or control characters" in runs["inner"]["error"]
    )  # the one key rule (collector.credentials)
    from collector.readout.server import store_registry

    dump = "\n".join(
        str(v)
        for sql in (
            "SELECT * FROM runs",
            "SELECT * FROM samples",
            "SELECT * FROM quarantine",
            "SELECT * FROM texts",
        )
        for row in q(store, sql)
        for v in row.values()
    )
    metrics = generate_latest(store_registry(store)).decode()
    for where, blob in {
        "database": dump,
        "stdout": res.stdout,
        "stderr": res.stderr,
        "check": check.stdout + check.stderr,
        "/metrics": metrics,
    }.items():
        for piece in ("SECRET-4242424242", "AAAAAAAAAA", "BBBBBBBBBBBB"):
            assert piece not in blob, (where, piece)


KEY = "sk-LiveAA/AbcdEF+DefGHI=XyZ0123456789"
ECHOES = {  # how a real server may echo the key it was sent (issue #22's fresh-eyes attack)
    "double-json": lambda k: json.dumps(json.dumps({"error": f"bad key {k}"}).replace("/", "\\/")),
    "url-quote": lambda k: f"invalid key={urllib.parse.quote(k, safe='')}",
    "url-quote-plus": lambda k: f"invalid key={urllib.parse.quote_plus(k)}",
    "upper": lambda k: f"INVALID API KEY {k.upper()}",
    "prefix-cut": lambda k: f"invalid key {k[:14]}",  # the server cut the echo inside the key
    "suffix-cut": lambda k: f"{k[-14:]} is not a valid key",  # the echo starts inside the key
    "long-cut": lambda k: "x" * 280 + f" key {k}",  # over the snippet: the cut falls inside the key
    "html-entities": lambda k: f"<p>bad key {k.replace('/', '&#x2F;').replace('+', '&#43;')}</p>",
    "middle-cut": lambda k: f"key ...{k[5:21]}... rejected",  # cut at both ends: only its middle
}


@SQLITE
def test_a_key_echoed_in_any_encoding_or_cut_never_leaks(db_url: str, tmp_path: Path) -> None:
    """A real server on loopback answers 401 echoing the sent key double-JSON-escaped, URL-encoded
    (quote and quote_plus), upper-cased, or cut at either edge: neither ``runs.error`` nor the CLI
    output holds the key or any 6+ character run of its letters and digits, in any case."""
    from tests.http_fixtures import LoopbackServer

    def handle(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        sent = (headers.get("Authorization") or "").removeprefix("Bearer ")
        form = json.loads(body)["model"]
        return 401, {"Content-Type": "text/plain"}, ECHOES[form](sent).encode()

    server = LoopbackServer(handle)
    store = migrated(db_url)
    try:
        probes = probes_file(tmp_path, n=1)
        models = [
            openai_model(form, server.base_url, probes, api_key_env="CW_ECHO_KEY", model=form)
            for form in ECHOES
        ]
        config = write_config(tmp_path / "cw.yml", db_url, models)
        res = cli("collect", "--config", str(config), env={"CW_ECHO_KEY": KEY + "\n"})
        history = cli("history", "upper", "--database-url", db_url)
    finally:
        server.close()
    assert server.n_requests == len(ECHOES)
    errors = {
        r["name"]: r["error"]
        for r in q(store, "SELECT mo.name, r.error FROM runs r JOIN models mo ON mo.id = r.model_id")
    }
    assert set(errors) == set(ECHOES) and all("HTTP 401" in (e or "") for e in errors.values()), errors
    pieces = [p for p in re.split(r"[^A-Za-z0-9]", KEY) if len(p) >= 6] + [
        KEY[i : i + 6] for i in range(len(KEY) - 5)
    ]
    for where, blob in {
        **errors,
        "stdout": res.stdout,
        "stderr": res.stderr,
        "history": history.stdout,
    }.items():
        low = blob.lower()
        leaked = [p for p in pieces if p.lower() in low]
        assert not leaked, (where, leaked, blob)
    assert "***" in errors["prefix-cut"] and "***" in errors["suffix-cut"] and "***" in errors["double-json"]


@SQLITE
def test_a_served_model_name_with_a_bidi_override_never_becomes_a_version(
    db_url: str, tmp_path: Path
) -> None:
    """``version_from: response_model`` and a server that names itself with U+202E: each sample is
    a failed one with the reason, and no stored version label holds the character; an emoji and
    brackets are a fine label (issue #22)."""
    from tests.http_fixtures import LoopbackServer

    def handle(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        served = {"hostile": "gpt\u202eevil", "fine": "v🙂[/]"}[json.loads(body)["model"]]
        answer = {
            "model": served,
            "choices": [{"message": {"content": f"hi {time.monotonic_ns()}"}, "finish_reason": "stop"}],
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    server = LoopbackServer(handle)
    store = migrated(db_url)
    try:
        probes = probes_file(tmp_path, n=2)
        models = []
        for name in ("hostile", "fine"):
            m = openai_model(name, server.base_url, probes, model=name)
            del m["version"]
            m["version_from"] = "response_model"
            models.append(m)
        res = cli("collect", "--config", str(write_config(tmp_path / "cw.yml", db_url, models)))
    finally:
        server.close()
    assert "Traceback" not in res.stderr, res.stderr
    labels = [r["label"] for r in q(store, "SELECT label FROM model_versions")]
    assert "v🙂[/]" in labels and not any("\u202e" in label for label in labels), labels
    errors = q(
        store,
        "SELECT s.error FROM samples s JOIN runs r ON r.id = s.run_id JOIN models mo ON mo.id = r.model_id"
        " WHERE mo.name = 'hostile'",
    )
    assert len(errors) == 2
    assert all(
        e["error"] == "reported version label holds the control or bidi character U+202E at character 4"
        for e in errors
    )


# -- exit codes --------------------------------------------------------------------------------------------


def test_invalid_unicode_and_a_busy_port_exit_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "output": "b \\ud800 c"}\n', encoding="utf-8")
    res = cli("score", "--no-embeddings", str(bad))
    assert res.returncode == 2 and "lone surrogate \\ud800 at character 3" in res.stderr, res.stderr
    assert f"{bad}:1" in res.stderr and "Traceback" not in res.stderr
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert cli("db", "upgrade", "--database-url", db).returncode == 0  # serve-metrics needs a database
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        res = cli("serve-metrics", "--host", "127.0.0.1", "--port", str(port), "--database-url", db)
    assert res.returncode == 2 and f"cannot serve /metrics on 127.0.0.1:{port}" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


# -- bounded memory ---------------------------------------------------------------------------------------

PEAK = "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"


def peak_rss_mib(*args: str) -> tuple[int, float, str]:
    """(exit code, peak RSS of the child in MiB, its stdout+stderr)."""
    res = subprocess.run(
        [sys.executable, "-c", PEAK, sys.executable, "-m", "collector", *args],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    *out, last = res.stdout.strip().splitlines()
    return res.returncode, int(last) / 1024, "\n".join(out) + res.stderr


@pytest.mark.slow
@SOAK
@SQLITE
def test_200k_lines_are_streamed_with_bounded_memory(db_url: str, tmp_path: Path) -> None:
    store = migrated(db_url)
    log = tmp_path / "requests.jsonl"
    with log.open("w", encoding="utf-8") as f:
        for n in range(200_000):
            f.write(good_line(n) + "\n")
    config = write_config(tmp_path / "cw.yml", db_url, [jsonl_model("big", log)])
    code, peak, out = peak_rss_mib("collect", "--config", str(config))
    assert code == 0, out
    assert peak < 900, peak  # the whole log pulled into memory took ~1 GB before issue #11
    [run] = q(store, "SELECT status, n_samples FROM runs")
    assert run == {"status": "succeeded", "n_samples": 200_000}
    scored = q(store, "SELECT DISTINCT n_samples FROM metric_values")
    assert [s["n_samples"] for s in scored] == [5000]  # the reservoir (max_scored_samples)
    print(f"200k lines: peak RSS {peak:.0f} MiB")
