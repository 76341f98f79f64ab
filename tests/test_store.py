"""The storage API on real SQLite and real PostgreSQL: round trips, transactions, views, retention."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from store_helpers import full_run, migrated_store, result, samples

from collector.render.history import history_table
from collector.store import SampleRecord, StoreError
from collector.store.cli_commands import record_scored_file
from collector.store.retention import prune_sample_text

ROOT = Path(__file__).resolve().parents[1]

NASTY = {
    "nul": "before\x00after",
    "mb": "x" * 1_000_000 + "é",
    "log_bytes": b"caf\xe9 \xff\xfe ok".decode("utf-8", "surrogateescape"),
    "emoji": "collapse 🫠👩🏽‍🚀 done",
    "rtl": "مرحبا بالعالم שלום עולם",
}


def test_texts_round_trip_exactly(db_url: str) -> None:
    store = migrated_store(db_url)
    rid = store.begin_run("m", "v1")
    recs = [SampleRecord(k, "probe", v, sample_index=i) for i, (k, v) in enumerate(NASTY.items())]
    assert store.add_samples(rid, recs) == len(recs)
    back = {s.prompt_key: s.output for s in store.run_samples(rid)}
    assert back == NASTY
    assert len(back["mb"]) == 1_000_001


def test_lone_surrogate_rejected_and_batch_not_stored(db_url: str) -> None:
    store = migrated_store(db_url)
    rid = store.begin_run("m", "v1")
    with pytest.raises(StoreError, match=r"sample 1 .*lone surrogate"):
        store.add_samples(rid, [SampleRecord("a", "p", "fine"), SampleRecord("b", "p", "bad \ud800")])
    assert store.run_samples(rid) == []
    assert store.run_status(rid)[2] == 0


def test_duplicate_outputs_stored_once(db_url: str) -> None:
    store = migrated_store(db_url)
    rid = store.begin_run("m", "v1")
    store.add_samples(rid, samples(["same", "same", "same", "other"]))
    with store.engine.connect() as conn:
        assert conn.scalar(text("SELECT COUNT(*) FROM texts")) == 2
        assert conn.execute(text("SELECT n_copies FROM v_duplicate_samples")).scalars().all() == [3]


def test_versions_are_ordered_and_seen(db_url: str) -> None:
    store = migrated_store(db_url)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    store.ensure_version("m", "b", "header", seen_at=t0)
    store.ensure_version("m", "a", "config", seen_at=t0 + timedelta(days=1))
    store.ensure_version("m", "b", "header", seen_at=t0 + timedelta(days=2))
    vs = store.versions("m")
    assert [(v[0], v[1], v[4]) for v in vs] == [("b", 1, "header"), ("a", 2, "config")]
    assert vs[0][3].replace(tzinfo=UTC) == t0 + timedelta(days=2)


def test_finish_run_writes_values_and_views_skip_incomplete_runs(db_url: str) -> None:
    store = migrated_store(db_url)
    full_run(store, "m", "v1", 0.8)
    full_run(store, "m", "v2", 0.6)
    failed = full_run(store, "m", "v2", 0.1, status="failed")
    running = store.begin_run("m", "v2")
    latest = {(r["version"], r["scope"]): r["value"] for r in store.latest_metrics("m")}
    assert latest == {
        ("v1", "within"): 0.8,
        ("v1", "across"): 0.4,
        ("v2", "within"): 0.6,
        ("v2", "across"): 0.3,
    }
    pp = store.per_prompt_values(failed)
    assert pp["distinct_2"]["p1"] == 0.1 and math.isnan(pp["distinct_2"]["p2"])
    with store.engine.connect() as conn:
        base = conn.execute(
            text(
                "SELECT version, delta FROM v_metric_vs_baseline WHERE scope = 'within' ORDER BY version_ordinal"
            )
        ).all()
        assert [(v, round(d, 9)) for v, d in base] == [("v1", 0.0), ("v2", -0.2)]
        failed_rows = conn.execute(text("SELECT run_id, error FROM v_failed_runs")).all()
        assert failed_rows == [(failed, "boom")]
    assert store.run_status(running)[0] == "running"
    assert history_table(store, "m") == (
        ["metric", "v1 (baseline)", "v2", "trend (diversity)"],
        [["distinct_2", "0.8000", "0.6000 (−20.0 pp)", "–"]],  # a rate: its change in points
    )


def test_finish_run_is_atomic(db_url: str) -> None:
    store = migrated_store(db_url)
    rid = store.begin_run("m", "v1")
    bad = result(0.5)
    bad.values.append(bad.values[0])  # violates unique (run, metric, scope) mid-transaction
    with pytest.raises(Exception, match=r"(?i)unique"):
        store.finish_run(rid, "succeeded", None, bad)
    assert store.run_status(rid)[0] == "running"
    with store.engine.connect() as conn:
        assert conn.scalar(text("SELECT COUNT(*) FROM metric_values")) == 0
        assert conn.scalar(text("SELECT COUNT(*) FROM prompt_metric_values")) == 0
    with pytest.raises(StoreError, match="final status"):
        store.finish_run(rid, "done")
    store.finish_run(rid, "succeeded", None, result(0.5))
    with pytest.raises(StoreError, match="is 'succeeded'; samples can only be added"):
        store.add_samples(rid, samples(["late"]))


KILL_SCRIPT = """
import os, sys, time
sys.path.insert(0, {root!r})
from collector.store import Store, SampleRecord
st = Store({url!r})
rid = st.begin_run("m", "v1")
st.add_samples(rid, [SampleRecord("p", "prompt", "out %d" % i, sample_index=i) for i in range(5)])
print(rid, flush=True)
time.sleep(60)
"""


def test_killed_run_becomes_interrupted(db_url: str) -> None:
    store = migrated_store(db_url)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT.format(root=str(ROOT), url=db_url)],
        stdout=subprocess.PIPE,
        text=True,
    )
    rid = int(proc.stdout.readline())  # type: ignore[union-attr]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert store.mark_interrupted_runs(stale_after=timedelta(hours=1)) == 0  # heartbeat is fresh
    assert store.mark_interrupted_runs() == 1
    status, error, n, _ = store.run_status(rid)
    assert status == "interrupted" and "process ended" in (error or "")
    assert n == 5 and len(store.run_samples(rid)) == 5
    with store.engine.connect() as conn:
        assert conn.scalar(text("SELECT COUNT(*) FROM v_metric_history WHERE run_id = :r"), {"r": rid}) == 0
        assert conn.scalar(text("SELECT COUNT(*) FROM v_failed_runs WHERE run_id = :r"), {"r": rid}) == 1


def test_concurrent_writers_lose_nothing(db_url: str) -> None:
    store = migrated_store(db_url)
    errors: list[BaseException] = []

    def job(k: int) -> None:
        try:
            for j in range(3):
                rid = store.begin_run(f"model{k % 2}", f"v{j}")
                for b in range(3):
                    store.add_samples(
                        rid,
                        [
                            SampleRecord("p", "prompt", f"{k}-{j}-{b}-{i}", sample_index=b * 10 + i)
                            for i in range(10)
                        ],
                    )
                store.finish_run(rid, "succeeded", None, result(0.5))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.engine.connect() as conn:
        assert conn.scalar(text("SELECT COUNT(*) FROM samples")) == 4 * 3 * 30
        assert conn.scalar(text("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'")) == 12
        assert conn.scalar(text("SELECT COUNT(*) FROM metric_values")) == 24
        assert conn.scalar(text("SELECT COUNT(DISTINCT ordinal) FROM model_versions")) == 3


def test_retention_prunes_old_text_keeps_metrics(db_url: str) -> None:
    store = migrated_store(db_url)
    old = datetime.now(UTC) - timedelta(days=40)
    rid = store.begin_run("m", "v1")
    store.add_samples(
        rid,
        [
            SampleRecord("p", "q", "old only", created_at=old),
            SampleRecord("p", "q", "shared", sample_index=1, created_at=old),
            SampleRecord("p", "q", "shared", sample_index=2),
        ],
    )
    store.finish_run(rid, "succeeded", None, result(0.7))
    assert prune_sample_text(store, days=30) == 1
    outs = sorted((s.sample_index, s.output) for s in store.run_samples(rid))
    assert outs == [(0, None), (1, "shared"), (2, "shared")]
    assert [r["value"] for r in store.latest_metrics("m") if r["scope"] == "within"] == [0.7]
    with pytest.raises(ValueError, match="days"):
        prune_sample_text(store, days=0)


def test_record_scored_file_and_failure_closes_run(db_url: str) -> None:
    store = migrated_store(db_url)
    rid = record_scored_file(store, "m", "v1", samples(["a", "b", "a", None]), result(0.9))
    assert store.run_status(rid)[:2] == ("partial", None)
    assert [r["value"] for r in store.latest_metrics("m") if r["scope"] == "within"] == [0.9]
    with pytest.raises(StoreError, match="lone surrogate"):
        record_scored_file(store, "m", "v2", [SampleRecord("p", "q", "\udfff\ud800")], result(0.1))
    with store.engine.connect() as conn:
        status, err = conn.execute(text("SELECT status, error FROM runs ORDER BY id DESC")).first()
    assert status == "failed" and "lone surrogate" in err
