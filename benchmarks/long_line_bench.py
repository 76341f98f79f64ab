"""Peak RSS of `collapse-watch collect` on a JSONL log with one 50 MB line (issue #22).

Two fresh `collect` processes on SQLite, each over 200 ordinary lines: ``control`` without a long
line, ``long`` with one line of ``--mb`` MB in the middle.  A line over the source's
``max_line_bytes`` (default 1 MiB) is quarantined with its size and never held in memory whole, so
both peaks should be close (before issue #22: 349 MB -> 1.36 GB).  Prints each process's peak RSS
(``ru_maxrss`` of the child), wall seconds, exit code, and what was stored and quarantined.

Run: ``python benchmarks/long_line_bench.py [--mb 50]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def line(n: int) -> str:
    return json.dumps(
        {"version": "v1", "prompt": f"question {n % 20}", "output": f"answer {n} with words {n * 7 % 13}"}
    )


def huge_text(mb: int) -> str:
    """``mb`` MB of words (a tokenizer holds each of them), not one repeated character."""
    words = (f"w{i % 997}" for i in range(mb * 1_000_000 // 5))
    return " ".join(words)


def write_log(path: Path, long_mb: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for n in range(200):
            f.write(line(n) + "\n")
            if long_mb and n == 100:
                f.write(json.dumps({"version": "v1", "prompt": "huge", "output": huge_text(long_mb)}) + "\n")


def measure(tmp: Path, name: str, long_mb: int) -> dict[str, object]:
    log, db = tmp / f"{name}.jsonl", tmp / f"{name}.db"
    write_log(log, long_mb)
    cfg = tmp / f"{name}.yml"
    model = {
        "name": "bot",
        "version": "v1",
        "source": {"type": "jsonl", "path": str(log)},
        "metrics": ["distinct_1", "distinct_2"],
        "min_samples": 1,
    }
    cfg.write_text(yaml.safe_dump({"database_url": f"sqlite:///{db}", "models": [model]}), encoding="utf-8")
    # each measurement in its own child of a fresh helper, so ru_maxrss of the children is its own
    code = (
        "import resource, subprocess, sys, time; t = time.monotonic();"
        f"rc = subprocess.run([sys.executable, '-m', 'collector', 'collect', '-c', {str(cfg)!r}],"
        " capture_output=True).returncode;"
        "print(rc, time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    rc, wall, rss_kib = out.stdout.split()
    with sqlite3.connect(db) as conn:
        samples = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
        quarantined = conn.execute("SELECT reason FROM quarantine").fetchall()
    return {
        "case": name,
        "exit": int(rc),
        "wall_s": round(float(wall), 1),
        "peak_rss_mib": round(int(rss_kib) / 1024),
        "log_mb": round(log.stat().st_size / 1e6, 1),
        "samples": samples,
        "quarantined": [r[0][-90:] for r in quarantined],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for name, mb in (("control", 0), ("long", args.mb)):
            start = time.monotonic()
            r = measure(Path(d), name, mb)
            print(json.dumps(r), f"({time.monotonic() - start:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
