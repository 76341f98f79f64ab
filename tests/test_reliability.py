"""Issue #11 in-process: poison records, terminal runs, reclaim, positions and keys in the database.

Every test runs on SQLite and on the real PostgreSQL (the ``db_url`` fixture).  The same faults
through the real CLI processes are in tests/test_faults.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from collector.config import ModelConfig
from collector.owner import current_owner, owner_alive
from collector.redaction import redact
from collector.runner import Runner, source_id
from collector.store.api import SampleRecord, Store
from collector.store.migrate import upgrade
from collector.store.pulls import OffsetConflict, PullBatch, Quarantined

LEXICAL = ["distinct_1", "distinct_2"]


def migrated(db_url: str) -> Store:
    upgrade(db_url)
    return Store(db_url)


def jsonl_model(log: Path, tmp_path: Path, **over: Any) -> ModelConfig:
    entry: dict[str, Any] = {
        "name": "logged",
        "source": {"type": "jsonl", "path": str(log), "state_file": str(tmp_path / "state.json")},
        "samples_per_prompt": 2,
        "min_samples": 1,
        "metrics": LEXICAL,
        **over,
    }
    return ModelConfig.model_validate(entry)


def line(prompt: str, output: str, version: str = "v1", pid: str | None = None) -> str:
    return json.dumps({"prompt": prompt, "output": output, "version": version, "prompt_id": pid or prompt})


def rows(store: Store, sql: str, **params: Any) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def test_poison_lines_are_quarantined_and_never_block(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    good = [line(f"prompt {i % 3}", f"answer number {i}") for i in range(9)]
    poison = [
        '{"prompt": "broken", "output": ',  # not JSON
        "[1, 2]",  # not an object
        '{"prompt": "no output"}',  # missing field
        line("nul \x00 in the prompt", "fine output"),  # PostgreSQL TEXT refuses NUL
        '{"prompt": "lone \\ud800 escape", "output": "out \\udfff put", "version": "v1"}',
        line("long version", "out", version="v" * 201),
        line("long id", "out", pid="k" * 201),
        "NOT-UTF8",  # replaced by the bytes ff fe below
    ]
    body = [good[0], poison[0], poison[1], good[1], *poison[2:], *good[2:]]
    data = ("\n".join(body) + "\n").encode("utf-8").replace(b"NOT-UTF8", b"\xff\xfe not utf-8")
    log.write_bytes(data)
    store = migrated(db_url)
    model = jsonl_model(log, tmp_path)
    [report] = Runner(store, None, n_boot=20).run(model)
    assert report.status == "partial", report
    run = rows(store, "SELECT * FROM runs WHERE id = :i", i=report.run_id)[0]
    # good lines, the NUL prompt and the surrogate line are made safe and stored: 9 + 2
    assert run["n_samples"] == 11 and run["n_errors"] == 0 and run["n_quarantined"] == 6
    q = {r["location"]: r["reason"] for r in store.quarantined("logged")}
    expect = {
        2: "invalid JSON",
        3: "expected a JSON object",
        5: "missing or non-string",
        8: "version label is 201",
    }
    for n, reason in expect.items():
        assert q[f"{log}:{n}"].startswith(reason), q
    assert q[f"{log}:9"].startswith("prompt id is 201 characters")
    assert q[f"{log}:10"].startswith("not valid UTF-8")
    outputs = {s.output for s in store.run_samples(report.run_id)}  # type: ignore[arg-type]
    assert "out \ufffd put" in outputs and "fine output" in outputs
    prompts = {r["body"] for r in rows(store, "SELECT body FROM prompts")}
    assert "nul \ufffd in the prompt" in prompts and "lone \ufffd escape" in prompts
    # nothing is read twice: every line is stored once or quarantined once
    assert Runner(store, None).run(model) == []
    n_keys = rows(store, "SELECT count(*) AS n FROM source_records WHERE source = :s", s=source_id(model))
    assert n_keys[0]["n"] == len(body)
    # later lines are still collected
    with log.open("a", encoding="utf-8") as f:
        f.write(line("prompt 0", "a later answer") + "\n" + poison[0] + "\n" + poison[0] + "\n")
    [later] = Runner(store, None).run(model)
    assert later.status == "partial" and later.n_samples == 1
    assert len(store.quarantined("logged")) == 8
    assert store.quarantine_counts() == {("logged", source_id(model)): 8}


def test_sources_that_cannot_open_end_in_visible_runs(db_url: str, tmp_path: Path) -> None:
    store = migrated(db_url)
    glob = tmp_path / "no-such-dir" / "*.jsonl"
    [first] = Runner(store, None).run(jsonl_model(glob, tmp_path))  # no version known: reported only,
    assert first.status == "no_data" and first.run_id is None  # a made-up label would become the baseline
    assert first.error == f"no file matches {glob}"
    [nd] = Runner(store, None).run(jsonl_model(glob, tmp_path, version="unknown"))
    assert nd.status == "no_data" and nd.run_id is not None and nd.error == f"no file matches {glob}"
    sql = ModelConfig.model_validate(
        {
            "name": "sqlsrc",
            "version": "v3",
            "source": {
                "type": "sql",
                "url": "postgresql+psycopg://nobody:pw@127.0.0.1:1/none?connect_timeout=2",
                "query": "SELECT id, prompt, output FROM logs",
                "watermark_column": "id",
                "state_file": str(tmp_path / "sql-state.json"),
            },
        }
    )
    [failed] = Runner(store, None).run(sql)
    assert failed.status == "failed" and "query failed" in (failed.error or "")
    assert "pw" not in (failed.error or "")
    got = rows(
        store,
        "SELECT r.status, mv.label, r.finished_at FROM runs r JOIN model_versions mv ON mv.id = r.version_id ORDER BY r.id",
    )
    assert [(g["status"], g["label"]) for g in got] == [("no_data", "unknown"), ("failed", "v3")]
    assert all(g["finished_at"] is not None for g in got)


def test_blank_outputs_are_counted_and_the_reservoir_bounds_scoring(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    lines = [
        line(f"p{i % 5}", "" if i % 4 == 0 else ("  " if i % 4 == 1 else f"text {i}")) for i in range(60)
    ]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = migrated(db_url)
    [r] = Runner(store, None, n_boot=20).run(jsonl_model(log, tmp_path, max_scored_samples=12))
    run = rows(store, "SELECT n_samples, n_blank FROM runs WHERE id = :i", i=r.run_id)[0]
    assert run == {"n_samples": 60, "n_blank": 30}
    scored = rows(store, "SELECT DISTINCT n_samples FROM metric_values WHERE run_id = :i", i=r.run_id)
    assert [s["n_samples"] for s in scored] == [12]


def test_commit_pull_is_atomic_compare_and_set_and_never_stores_a_key_twice(db_url: str) -> None:
    store = migrated(db_url)
    run = store.begin_run("m", "v1", source_kind="jsonl")
    rec = SampleRecord("p", "prompt", "out", 0)
    batch = PullBatch({run: [("k1", rec)]}, [(run, Quarantined("f:2", "bad", "x", "k2"))])
    gen, dupes = store.commit_pull("src", "m", batch, {"at": 1}, 0)
    assert (gen, dupes) == (1, 0)
    with pytest.raises(OffsetConflict):  # a second process that read generation 0
        store.commit_pull("src", "m", batch, {"at": 1}, 0)
    again = PullBatch({run: [("k1", rec), ("k3", SampleRecord("p", "prompt", "out2", 1))]}, [])
    gen, dupes = store.commit_pull("src", "m", again, {"at": 2}, 1)
    assert (gen, dupes) == (2, 1)
    assert store.pull_position("src") == ({"at": 2}, 2)
    assert store.run_status(run)[2] == 2  # n_samples: k1 once, k3


def test_reclaim_closes_runs_of_dead_owners_only(db_url: str) -> None:
    store = migrated(db_url)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host = current_owner().rsplit(":", 2)[0]
    dead_owner = f"{host}:{int(dead.stdout)}:1"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        from collector.owner import _start_ticks

        live_owner = f"{host}:{live.pid}:{_start_ticks(live.pid)}"
        assert owner_alive(dead_owner) is False and owner_alive(live_owner) is True
        assert owner_alive(f"elsewhere:{live.pid}:1") is None
        a = store.begin_run("m", "v1", owner=dead_owner)
        b = store.begin_run("m", "v1", owner=live_owner)
        c = store.begin_run("m", "v1", owner="elsewhere:1:1")  # fresh heartbeat on another host
        assert store.reclaim_orphaned_runs() == 1
        assert [store.run_status(i)[0] for i in (a, b, c)] == ["interrupted", "running", "running"]
        assert "ended before the run finished" in (store.run_status(a)[1] or "")
    finally:
        live.kill()
        live.wait()


def test_redact_covers_escaped_and_stripped_forms() -> None:
    key = "sk-live-abcdef123456\n"
    msg = "Illegal header value b'Bearer sk-live-abcdef123456\\n' and sk-live-abcdef123456"
    assert "abcdef" not in redact(msg, [key])
    assert redact("no secret here", [key]) == "no secret here"


def test_metrics_expose_quarantined_records_and_blank_ratio(db_url: str, tmp_path: Path) -> None:
    from collector.readout.server import store_registry

    log = tmp_path / "requests.jsonl"
    log.write_text("\n".join([line("p", ""), line("p", "x"), line("q", " "), "not json"]) + "\n")
    store = migrated(db_url)
    model = jsonl_model(log, tmp_path)
    Runner(store, None, n_boot=20).run(model)
    registry = store_registry(store)
    labels = {"model": "logged", "source": source_id(model)}
    assert registry.get_sample_value("collapse_watch_quarantined_records_total", labels) == 1.0
    blank = registry.get_sample_value("collapse_watch_last_run_blank_ratio", {"model": "logged"})
    assert blank == pytest.approx(2 / 3)


REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse BEFORE INSERT ON texts WHEN NEW.body LIKE '%refuse me%' "
        "BEGIN SELECT RAISE(ABORT, 'this text is refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.body LIKE '%refuse me%' THEN "
        "RAISE EXCEPTION 'this text is refused' USING ERRCODE = 'data_exception'; END IF; RETURN NEW; END $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER refuse BEFORE INSERT ON texts FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
}


def test_a_record_the_database_refuses_is_isolated_and_quarantined(db_url: str, tmp_path: Path) -> None:
    """A refusal vetting did not foresee (here a real trigger) splits the batch until the one bad
    record is left; it is quarantined with the database's reason and every other line is stored."""
    store = migrated(db_url)
    with store.engine.begin() as conn:
        for sql in REFUSE[store.engine.dialect.name]:
            conn.execute(text(sql))
    log = tmp_path / "requests.jsonl"
    lines = [line(f"p{i % 3}", f"output {i}" if i != 13 else "please refuse me") for i in range(40)]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = jsonl_model(log, tmp_path)
    [r] = Runner(store, None, n_boot=20).run(model)
    assert r.status == "partial" and r.n_samples == 39
    [q] = store.quarantined("logged")
    assert q["location"] == f"{log}:14" and "this text is refused" in q["reason"]
    assert q["reason"].startswith("the database refused it")
    stored = {s.output for s in store.run_samples(r.run_id)}  # type: ignore[arg-type]
    assert stored == {f"output {i}" for i in range(40) if i != 13}
    assert Runner(store, None).run(model) == []  # the position moved past it


def test_two_collectors_racing_on_one_log_store_each_line_once(db_url: str, tmp_path: Path) -> None:
    import threading

    store = migrated(db_url)
    log = tmp_path / "requests.jsonl"
    log.write_text("".join(line(f"p{i % 4}", f"race {i}") + "\n" for i in range(3000)), encoding="utf-8")
    model = jsonl_model(log, tmp_path)
    reports: list[Any] = []

    def collector() -> None:
        runner = Runner(Store(db_url), None, n_boot=10)  # its own engine, as another process would
        for _ in range(3):
            reports.extend(runner.run(model))

    threads = [threading.Thread(target=collector) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = rows(
        store, "SELECT t.body, count(*) AS n FROM samples s JOIN texts t ON t.id = s.text_id GROUP BY t.body"
    )
    assert len(counts) == 3000 and {c["n"] for c in counts} == {1}
    assert not rows(store, "SELECT id FROM runs WHERE status = 'running'")
    lost = [r for r in reports if r.status == "failed"]
    assert all("another process" in (r.error or "") for r in lost), lost


def test_request_deadline_is_total_and_cancel_cuts_a_drip() -> None:
    import threading
    import time

    from collector.config import Decoding, OpenAISourceConfig
    from collector.sources.base import SampleRequest
    from collector.sources.openai import OpenAISource
    from tests.fault_servers import FaultServer

    server = FaultServer("drip", drip_seconds=0.3)
    try:
        cfg = OpenAISourceConfig(
            type="openai", base_url=server.base_url, model="m", timeout_seconds=1, max_retries=0
        )
        with OpenAISource(cfg) as src:
            t0 = time.monotonic()
            [out] = list(src.sample([SampleRequest("p", "hi", 0)], Decoding()))
            took = time.monotonic() - t0
        assert out.error is not None and "no complete response within 1s" in out.error
        assert took < 2.5, took  # one byte every 0.3 s would take ~50 s to finish
        cfg = cfg.model_copy(update={"timeout_seconds": 60})
        with OpenAISource(cfg) as src:
            threading.Timer(0.5, src.cancel.set).start()
            t0 = time.monotonic()
            [out] = list(src.sample([SampleRequest("p", "hi", 0)], Decoding()))
        assert out.error is not None and out.error.startswith("cancelled from")
        assert time.monotonic() - t0 < 2.5
    finally:
        server.close()


def test_a_legacy_state_file_seeds_the_database_position_once(db_url: str, tmp_path: Path) -> None:
    from collector.sources.jsonl import JsonlSource

    log = tmp_path / "requests.jsonl"
    log.write_text("".join(line("p", f"old {i}") + "\n" for i in range(5)), encoding="utf-8")
    model = jsonl_model(log, tmp_path)
    legacy = JsonlSource(model.source)  # type: ignore[arg-type]  # what a pre-0003 collector did
    assert len(list(legacy.pull())) == 5
    legacy.commit()  # the state file now says: 5 lines read
    with log.open("a", encoding="utf-8") as f:
        f.write("".join(line("p", f"new {i}") + "\n" for i in range(3)))
    store = migrated(db_url)
    [r] = Runner(store, None, n_boot=10).run(model)
    assert sorted(s.output for s in store.run_samples(r.run_id)) == ["new 0", "new 1", "new 2"]  # type: ignore[arg-type]
    position, generation = store.pull_position(source_id(model))
    assert generation == 1 and position is not None
    (tmp_path / "state.json").unlink()  # from now on the database is the truth
    assert Runner(store, None).run(model) == []
