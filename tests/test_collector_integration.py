"""The collector end to end (issue #4) against a real ``transformers serve`` serving SmolLM2.

Every test stores into a real database (SQLite file or a fresh PostgreSQL schema).  Faults that
a real model server cannot produce on demand (a hanging server, a version header) come from small
real HTTP servers on loopback (``tests/http_fixtures.py``).  Runs are kept small: 2-4 prompts,
k=2, 12 new tokens, lexical metrics only, so the file runs in a few minutes on two shared cores.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from collector.config import ModelConfig, config_hash, load_config
from collector.runner import Runner
from collector.store.api import Store
from collector.store.migrate import upgrade
from tests import llm_server as served
from tests.cli_process import cli as run_cli
from tests.http_fixtures import LoopbackServer, VersionHeaderProxy
from tests.llm_server import LLMServer, free_port

pytestmark = pytest.mark.integration

# the fixtures of tests/llm_server.py: the session's SmolLM2 server, (re)started per test
smollm2_server = served.smollm2_server
llm_server = served.llm_server

PROMPTS = [
    "Name a colour and say why you like it.",
    "Write one sentence about the sea.",
    "Invent a name for a new fruit.",
    "Describe a cat in a few words.",
]
LEXICAL = ["distinct_1", "distinct_2", "self_bleu", "length_mean"]
PG = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# -- helpers ---------------------------------------------------------------------------------------


def write_probes(path: Path, prompts: list[str]) -> Path:
    path.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    return path


def openai_model(name: str, base_url: str, served: str, probes: Path, **over: Any) -> dict[str, Any]:
    """One model entry of the YAML config (an openai source), small and fast by default."""
    source = {
        "type": "openai",
        "base_url": base_url,
        "model": served,
        "timeout_seconds": 60,
        "max_retries": 1,
        "concurrency": 2,
        **over.pop("source", {}),
    }
    entry: dict[str, Any] = {
        "name": name,
        "source": source,
        "version": "v1",
        "samples_per_prompt": 2,
        "probes": str(probes),
        "decoding": {"temperature": 1.0, "max_tokens": 12},
        "metrics": LEXICAL,
    }
    entry.update(over)
    return entry


def write_config(path: Path, db_url: str, models: list[dict[str, Any]], **top: Any) -> Path:
    doc = {"database_url": db_url, "metrics_host": "127.0.0.1", "models": models, **top}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def model_config(entry: dict[str, Any]) -> ModelConfig:
    return ModelConfig.model_validate(entry)


def migrated(db_url: str) -> Store:
    upgrade(db_url)
    return Store(db_url)


def runs(store: Store, model: str) -> list[dict[str, Any]]:
    """Every run of ``model`` with its version label, oldest first."""
    q = text(
        "SELECT r.id, r.status, r.error, r.n_samples, r.n_errors, r.config_hash, r.started_at, "
        "r.finished_at, r.source_kind, mv.label AS version, mv.ordinal FROM runs r "
        "JOIN model_versions mv ON mv.id = r.version_id JOIN models mo ON mo.id = r.model_id "
        "WHERE mo.name = :m ORDER BY r.id"
    )
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q, {"m": model})]


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """The real CLI with wide tables (its error and status lines are matched whole)."""
    return run_cli(*args, env={"COLUMNS": "200", **(env or {})}, timeout=timeout)


# -- 1. a scheduled run end to end ---------------------------------------------------------------


@PG
def test_scheduled_runs_end_to_end_and_clean_sigterm(
    llm_server: LLMServer, db_url: str, tmp_path: Path
) -> None:
    """`collapse-watch run` collects on its schedule into PostgreSQL and exits 0 on SIGTERM."""
    probes = write_probes(tmp_path / "probes.txt", PROMPTS)
    entry = openai_model("smol", llm_server.base_url, llm_server.model, probes, schedule={"every": "2s"})
    config = write_config(tmp_path / "cw.yml", db_url, [entry], metrics_port=free_port())
    store = migrated(db_url)

    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        while time.monotonic() - t0 < 150:
            done = [r for r in runs(store, "smol") if r["status"] == "succeeded"]
            if len(done) >= 2 or proc.poll() is not None:
                break
            time.sleep(0.5)
        assert proc.poll() is None, f"collector died: {proc.stdout.read() if proc.stdout else ''}"
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        output, _ = proc.communicate(timeout=90)
        shutdown_seconds = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "received SIGTERM" in output and "stopped" in output

    all_runs = runs(store, "smol")
    assert all(r["status"] != "running" for r in all_runs), all_runs  # nothing left open
    # a run in progress at SIGTERM stops between samples (it does not sample to the end)
    assert shutdown_seconds < 20, f"shutdown took {shutdown_seconds:.1f}s"
    for r in all_runs:
        if r["status"] == "interrupted":
            assert r["error"] == "collector stopped before the run finished"
            assert len(store.run_samples(r["id"])) == r["n_samples"] > 0  # what it sampled is kept
    succeeded = [r for r in all_runs if r["status"] == "succeeded"]
    assert len(succeeded) >= 2, all_runs
    expected_hash = config_hash(load_config(config).model("smol"))
    for r in succeeded:
        assert r["n_samples"] == len(PROMPTS) * 2 and r["n_errors"] == 0
        assert r["config_hash"] == expected_hash and r["version"] == "v1"
        assert r["started_at"] is not None and r["finished_at"] >= r["started_at"]
        assert r["source_kind"] == "openai"
        samples = store.run_samples(r["id"])
        assert len(samples) == len(PROMPTS) * 2
        assert {s.prompt for s in samples} == set(PROMPTS)
        assert all(s.output and s.output.strip() and s.error is None for s in samples)
        assert all(s.decoding and s.decoding["max_tokens"] == 12 for s in samples)
    # real sampling: the two samples of at least one prompt differ (greedy decoding would not)
    samples = store.run_samples(succeeded[0]["id"])
    by_prompt: dict[str, set[str]] = {}
    for s in samples:
        by_prompt.setdefault(s.prompt, set()).add(s.output or "")
    assert any(len(outs) == 2 for outs in by_prompt.values()), by_prompt

    latest = store.latest_metrics("smol")
    metrics = {(row["metric"], row["scope"]) for row in latest}
    assert {(m, "within") for m in LEXICAL} <= metrics
    assert all(row["value"] is not None for row in latest if row["metric"] in ("distinct_1", "length_mean"))
    assert {row["run_id"] for row in latest} == {succeeded[-1]["id"]}  # the latest completed run


# -- 2. the server goes away while a run is sampling ----------------------------------------------


@SQLITE
def test_server_stopped_mid_run_keeps_samples_and_next_run_succeeds(
    llm_server: LLMServer, db_url: str, tmp_path: Path
) -> None:
    probes = write_probes(tmp_path / "probes.txt", PROMPTS)
    entry = openai_model(
        "smol",
        llm_server.base_url,
        llm_server.model,
        probes,
        samples_per_prompt=3,
        source={"concurrency": 1, "max_retries": 1, "timeout_seconds": 20},
    )
    model = model_config(entry)
    store = migrated(db_url)
    runner = Runner(store, None, n_boot=50)

    def stop_after_three(done: int, total: int) -> None:
        if done == 3:
            llm_server.stop()  # SIGTERM: uvicorn finishes the request in flight, then refuses

    [report] = runner.run(model, progress=stop_after_three)
    assert not llm_server.running
    assert report.status == "failed" and report.n_samples == 12
    ok = report.n_samples - report.n_errors
    assert 3 <= ok <= 4 and report.n_errors >= 8
    assert report.error is not None and f"only {ok} of 12 samples succeeded" in report.error
    assert llm_server.base_url in report.error and "connection error" in report.error

    [row] = runs(store, "smol")
    assert (row["status"], row["n_samples"], row["n_errors"]) == ("failed", 12, report.n_errors)
    stored = store.run_samples(report.run_id)  # type: ignore[arg-type]
    assert len(stored) == 12
    good = [s for s in stored if s.error is None]
    assert len(good) == ok and all(s.output for s in good)  # nothing already sampled is lost
    assert all(s.output is None and "connection error from" in (s.error or "") for s in stored if s.error)
    assert store.latest_metrics("smol") == []  # a failed run has no metrics

    llm_server.restart()
    [again] = runner.run(model)
    assert again.status == "succeeded" and again.n_errors == 0 and again.n_samples == 12
    assert {r["status"] for r in runs(store, "smol")} == {"failed", "succeeded"}
    assert {row["run_id"] for row in store.latest_metrics("smol")} == {again.run_id}


# -- 3. a server that never answers in time ----------------------------------------------------


def test_slow_server_times_out_quickly_with_the_url(db_url: str, tmp_path: Path) -> None:
    def hang(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        time.sleep(5)
        return 200, {"Content-Type": "application/json"}, b"{}"

    slow = LoopbackServer(hang)
    try:
        probes = write_probes(tmp_path / "probes.txt", PROMPTS[:2])
        entry = openai_model(
            "slow",
            slow.base_url,
            "whatever",
            probes,
            source={"timeout_seconds": 0.5, "max_retries": 0, "concurrency": 4},
        )
        store = migrated(db_url)
        t0 = time.monotonic()
        [report] = Runner(store, None).run(model_config(entry))
        took = time.monotonic() - t0
    finally:
        slow.close()
    assert took < 3.0, f"4 timed-out requests at concurrency 4 took {took:.1f}s"
    assert slow.n_requests == 4
    assert report.status == "failed" and report.n_errors == 4
    url = f"{slow.base_url}/chat/completions"
    assert report.error is not None and f"timeout from {url}" in report.error
    stored = store.run_samples(report.run_id)  # type: ignore[arg-type]
    assert len(stored) == 4
    assert all(
        f"timeout from {url} after 0 retries: no complete response within 0.5s" in (s.error or "")
        for s in stored
    )
    [row] = runs(store, "slow")
    assert row["status"] == "failed" and row["finished_at"] is not None


# -- 4. a new model version is detected between runs ---------------------------------------------


@SQLITE
def test_version_change_between_runs_from_a_header(
    llm_server: LLMServer, db_url: str, tmp_path: Path
) -> None:
    proxy = VersionHeaderProxy(f"http://127.0.0.1:{llm_server.port}", "X-Model-Version", "2026-11-01")
    try:
        probes = write_probes(tmp_path / "probes.txt", PROMPTS[:2])
        entry = openai_model(
            "smol", proxy.base_url, llm_server.model, probes, version_from="header:X-Model-Version"
        )
        del entry["version"]
        model = model_config(entry)
        store = migrated(db_url)
        runner = Runner(store, None, n_boot=50)
        [first] = runner.run(model)
        proxy.version = "2026-11-24"
        [second] = runner.run(model)
    finally:
        proxy.close()
    assert (first.status, first.version) == ("succeeded", "2026-11-01")
    assert (second.status, second.version) == ("succeeded", "2026-11-24")
    versions = store.versions("smol")
    assert [(v[0], v[1], v[4]) for v in versions] == [
        ("2026-11-01", 1, "header"),
        ("2026-11-24", 2, "header"),
    ]
    attached = {r["id"]: (r["version"], r["ordinal"]) for r in runs(store, "smol")}
    assert attached == {first.run_id: ("2026-11-01", 1), second.run_id: ("2026-11-24", 2)}
    latest = {(row["version"], row["run_id"]) for row in store.latest_metrics("smol")}
    assert latest == {("2026-11-01", first.run_id), ("2026-11-24", second.run_id)}


@SQLITE
def test_version_from_response_model_is_the_served_name(
    llm_server: LLMServer, db_url: str, tmp_path: Path
) -> None:
    probes = write_probes(tmp_path / "probes.txt", PROMPTS[:2])
    entry = openai_model("smol", llm_server.base_url, llm_server.model, probes, version_from="response_model")
    del entry["version"]
    store = migrated(db_url)
    [report] = Runner(store, None, n_boot=50).run(model_config(entry))
    assert report.status == "succeeded" and report.version == llm_server.model == "smollm2"
    assert [(v[0], v[1], v[4]) for v in store.versions("smol")] == [("smollm2", 1, "response_model")]


# -- 5. the CLI: collect --once ---------------------------------------------------------------------


@SQLITE
def test_collect_once_cli_and_a_down_source_does_not_stop_the_others(
    llm_server: LLMServer, db_url: str, tmp_path: Path
) -> None:
    probes = write_probes(tmp_path / "probes.txt", PROMPTS[:2])
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config = write_config(
        tmp_path / "cw.yml",
        db_url,
        [
            openai_model("up", llm_server.base_url, llm_server.model, probes),
            openai_model("down", down, "smollm2", probes),
        ],
    )
    first = cli("collect", "--config", str(config), "--model", "up", "--once")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "collection runs" in first.stdout and "succeeded" in first.stdout and "up" in first.stdout

    both = cli("collect", "--config", str(config), "--once")
    assert both.returncode == 1, both.stdout + both.stderr
    assert "failed" in both.stdout and "succeeded" in both.stdout
    store = Store(db_url)
    assert [r["status"] for r in runs(store, "up")] == ["succeeded", "succeeded"]
    [failed] = runs(store, "down")
    assert failed["status"] == "failed" and failed["n_errors"] == failed["n_samples"] == 4
    assert failed["error"].startswith("only 0 of 4 samples succeeded")
    assert f"connection error from {down}/chat/completions after 1 retries" in failed["error"]


# -- 6. a JSONL log through the runner ------------------------------------------------------------


def test_jsonl_log_with_a_malformed_line_through_the_runner(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    lines = [
        json.dumps({"prompt": p, "output": f"answer {i} to {p}", "version": "v7", "prompt_id": f"p{j}"})
        for j, p in enumerate(PROMPTS[:2])
        for i in range(3)
    ]
    lines.insert(3, '{"prompt": "broken", "output": ')  # line 4: not JSON
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    entry = {
        "name": "logged",
        "source": {"type": "jsonl", "path": str(log), "state_file": str(tmp_path / "state.json")},
        "samples_per_prompt": 3,
        "metrics": LEXICAL,
    }
    model = model_config(entry)
    store = migrated(db_url)
    runner = Runner(store, None, n_boot=50)

    reports = runner.run(model)
    [good] = [r for r in reports if r.version == "v7"]
    # the malformed line is quarantined (issue #11), not stored as a sample; the run is partial
    assert good.status == "partial" and good.n_samples == 6 and good.n_errors == 0
    stored = store.run_samples(good.run_id)  # type: ignore[arg-type]
    assert not [s.error for s in stored if s.error]
    [q] = store.quarantined("logged")
    assert (
        q["location"] == f"{log}:4" and q["reason"].startswith("invalid JSON") and q["run_id"] == good.run_id
    )
    assert sorted(s.output for s in stored if s.output) == sorted(
        json.loads(x)["output"] for x in lines if x.endswith("}")
    )
    assert [(v[0], v[1]) for v in store.versions("logged")] == [("v7", 1)]  # no made-up version
    assert {row["run_id"] for row in store.latest_metrics("logged")} == {good.run_id}

    assert runner.run(model) == []  # a rerun reads nothing twice
    with log.open("a", encoding="utf-8") as f:
        f.write(
            json.dumps({"prompt": PROMPTS[0], "output": "late answer", "version": "v7", "prompt_id": "p0"})
            + "\n"
        )
    [late] = Runner(store, None, n_boot=50).run(model)  # a new process: offsets from the database
    assert late.n_samples == 1 and late.status == "failed"  # one sample is below min_samples
    assert [s.output for s in store.run_samples(late.run_id)] == ["late answer"]  # type: ignore[arg-type]


# -- the default metric suite, embeddings included ------------------------------------------------


@SQLITE
def test_default_suite_with_embeddings(llm_server: LLMServer, db_url: str, tmp_path: Path) -> None:
    from collector.embeddings import Embedder
    from collector.metrics.registry import metric_names

    probes = write_probes(tmp_path / "probes.txt", PROMPTS[:2])
    entry = openai_model("smol", llm_server.base_url, llm_server.model, probes, metrics="default")
    store = migrated(db_url)
    [report] = Runner(store, Embedder().embed, n_boot=50).run(model_config(entry))
    assert report.status == "succeeded", report.error
    within = {row["metric"]: row["value"] for row in store.latest_metrics("smol") if row["scope"] == "within"}
    assert set(within) == set(metric_names())
    for name in ("embedding_mean_distance", "vendi_score"):
        assert within[name] is not None and within[name] > 0
