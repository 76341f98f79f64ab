"""Lease benchmark: how fast a SIGKILLed replica's model is free again, and what a claim costs.

    python benchmarks/lease_bench.py [--pg URL] [--kills 20] [--claims 200]

* release after SIGKILL: a separate process claims a model's lease (``Leases.claim``) and is
  SIGKILLed while holding it; the time from the kill until another process's claim of the next
  tick succeeds (polled every 2 ms).  Failover of a model is bounded by this plus the wait for the
  next tick of its schedule.
* claim cost: the wall time of one ``claim`` + release of a free model (what every replica pays on
  every tick of every model), median and 95th percentile.

Each run uses a fresh schema, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.store.leases import Leases  # noqa: E402
from collector.store.migrate import upgrade  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOLDER = """
import sys, time
from datetime import datetime, UTC
from collector.store.leases import Leases
lease = Leases.for_url(sys.argv[1], "doomed")
with lease.claim("m", datetime.fromisoformat(sys.argv[2])) as mine:
    print("held" if mine else "refused", flush=True)
    time.sleep(600)
"""


def release_after_kill(url: str, kills: int) -> list[float]:
    survivor = Leases.for_url(url, "survivor")
    assert survivor is not None
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    waits = []
    for i in range(kills):
        tick = T0 + timedelta(minutes=2 * i)
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url, tick.isoformat()], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        proc.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        while True:
            with survivor.claim("m", tick + timedelta(minutes=1)) as mine:
                if mine:
                    waits.append(time.perf_counter() - killed)
                    break
            if time.perf_counter() - killed > 30:
                raise RuntimeError("the killed holder's lease was not released within 30 s")
            time.sleep(0.002)
        proc.wait(timeout=10)
    survivor.close()
    return waits


def claim_cost(url: str, claims: int) -> list[float]:
    lease = Leases.for_url(url, "bench")
    assert lease is not None
    times = []
    for i in range(claims):
        t0 = time.perf_counter()
        with lease.claim("free", T0 + timedelta(seconds=i)) as mine:
            assert mine
        times.append(time.perf_counter() - t0)
    lease.close()
    return times


def ms(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    return (
        f"median {1000 * statistics.median(xs):.1f} ms, p95 {1000 * p95:.1f} ms, max {1000 * xs[-1]:.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--claims", type=int, default=200)
    args = ap.parse_args()
    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{args.pg}?options=-csearch_path%3D{schema}"
    try:
        upgrade(url)
        print(f"release after SIGKILL ({args.kills} kills): {ms(release_after_kill(url, args.kills))}")
        print(f"claim + release of a free model ({args.claims} claims): {ms(claim_cost(url, args.claims))}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
