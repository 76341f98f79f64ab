"""Leases on the real PostgreSQL: each (model, tick) is claimed once, runs never overlap, a dead
holder's lease is free at once; ticks are the same on every replica; SQLite has no leases."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from collector.config import config_from_dict
from collector.scheduler import latest_tick
from collector.store import models as m
from collector.store.leases import Leases
from collector.store.migrate import upgrade

PG = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def leases(db_url: str, holder: str) -> Leases:
    lease = Leases.for_url(db_url, holder)
    assert lease is not None
    return lease


def model(schedule: dict[str, str]):  # type: ignore[no-untyped-def]
    return config_from_dict(
        {
            "models": [
                {
                    "name": "a",
                    "source": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "a"},
                    "version": "v1",
                    "schedule": schedule,
                }
            ]
        }
    ).models[0]


@PG
def test_each_tick_is_claimed_once_and_a_running_model_is_never_claimed(db_url: str) -> None:
    upgrade(db_url)
    a, b = leases(db_url, "replica-a"), leases(db_url, "replica-b")
    try:
        with a.claim("m", T0) as mine:
            assert mine
            with b.claim("m", T0 + timedelta(minutes=1)) as theirs:
                assert not theirs  # a's run of m is still going: the next tick is skipped, no overlap
            with b.claim("other", T0) as theirs:
                assert theirs  # another model is independent
        with b.claim("m", T0) as theirs:
            assert not theirs  # a already collected this tick
        with b.claim("m", T0 - timedelta(minutes=1)) as theirs:
            assert not theirs  # nor an older one
        with b.claim("m", T0 + timedelta(minutes=1)) as theirs:
            assert theirs
        with a.engine.connect() as conn:
            row = conn.execute(select(m.CollectionLease).where(m.CollectionLease.model == "m")).one()
        assert row.holder == "replica-b" and row.last_tick == T0 + timedelta(minutes=1)
        assert row.released_at is not None and row.released_at >= row.claimed_at
    finally:
        a.close()
        b.close()


@PG
def test_replicas_racing_for_one_tick_give_it_to_exactly_one(db_url: str) -> None:
    upgrade(db_url)
    replicas = [leases(db_url, f"replica-{i}") for i in range(6)]
    barrier = threading.Barrier(len(replicas))
    won: list[str] = []
    lock = threading.Lock()

    def race(lease: Leases) -> None:
        barrier.wait(timeout=30)
        with lease.claim("m", T0) as mine:
            if mine:
                with lock:
                    won.append(lease.holder)

    threads = [threading.Thread(target=race, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for r in replicas:
        r.close()
    assert len(won) == 1, won


@PG
def test_an_unscheduled_run_waits_for_the_replica_collecting_the_model(db_url: str) -> None:
    """`collect --once` (``hold``) never overlaps a scheduled run, and does not consume a tick."""
    upgrade(db_url)
    replica, once = leases(db_url, "replica"), leases(db_url, "collect-once")
    entered = threading.Event()

    def collect_once() -> None:
        with once.hold("m"):
            entered.set()

    try:
        with replica.claim("m", T0) as mine:
            assert mine
            t = threading.Thread(target=collect_once)
            t.start()
            assert not entered.wait(1.5)  # blocked while the scheduled run goes on
        assert entered.wait(10)  # and runs as soon as it ended
        t.join(timeout=10)
        with replica.claim("m", T0 + timedelta(minutes=1)) as mine:
            assert mine  # the next tick is still collected
    finally:
        replica.close()
        once.close()


HOLD_AND_DIE = """
import sys, time
from datetime import datetime, UTC
from collector.store.leases import Leases
lease = Leases.for_url(sys.argv[1], "doomed")
with lease.claim("m", datetime(2026, 11, 29, 12, 0, tzinfo=UTC)) as mine:
    print("held" if mine else "refused", flush=True)
    time.sleep(600)
"""


@PG
def test_a_killed_holder_releases_its_model_at_once(db_url: str) -> None:
    upgrade(db_url)
    proc = subprocess.Popen([sys.executable, "-c", HOLD_AND_DIE, db_url], stdout=subprocess.PIPE, text=True)
    survivor = leases(db_url, "survivor")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with survivor.claim("m", T0 + timedelta(minutes=1)) as mine:
            assert not mine  # the holder is alive and running
        proc.kill()
        proc.wait(timeout=30)
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while True:  # the server notices the closed connection within moments
            with survivor.claim("m", T0 + timedelta(minutes=1)) as mine:
                if mine or datetime.now(UTC) > deadline:
                    break
        assert mine, "the dead replica's lease was not released within 10 s"
    finally:
        if proc.poll() is None:
            proc.kill()
        survivor.close()


def test_ticks_are_the_same_on_every_replica_whenever_it_fires() -> None:
    every = model({"every": "30s"})
    for offset in (0.0, 0.001, 12.5, 29.999):
        assert latest_tick(every, T0 + timedelta(seconds=offset)) == T0
    assert latest_tick(every, T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=30)
    cron = model({"cron": "*/5 * * * *"})
    assert latest_tick(cron, T0 + timedelta(minutes=4, seconds=59)) == T0
    assert latest_tick(cron, T0 + timedelta(minutes=5)) == T0 + timedelta(minutes=5)


def test_sqlite_has_no_leases(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert Leases.for_url(f"sqlite:///{tmp_path / 'x.db'}") is None
