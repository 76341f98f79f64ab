"""The lines logrotate's own ``copytruncate`` loses while a writer keeps appending (issue #22).

copytruncate copies ``app.log`` to ``app.log.1`` and then truncates ``app.log``: whatever the writer
appends between the end of the copy and the truncation is in neither file, so no reader (Vector,
Filebeat, this collector) can ever see it.  The collector reads every line that survives in either
file once (tests/test_source_jsonl.py); this script measures the window it cannot close.

A writer appends numbered lines (``--rate`` per second, flushed each) to a log pre-filled with
``--mb`` MB; the real ``logrotate --force`` rotates it with copytruncate ``--rotations`` times;
then the numbers found in ``app.log*`` are compared with those written.  Prints lines written,
lost, and the copy's duration (the window grows with the file's size).

Run: ``python benchmarks/copytruncate_window.py [--mb 50] [--rate 2000] [--rotations 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path


def writer(log: Path, rate: int, stop: threading.Event, written: list[int]) -> None:
    n = 0
    with log.open("a", encoding="utf-8") as f:  # O_APPEND: writes land at the (new) end after truncation
        while not stop.is_set():
            f.write(json.dumps({"prompt": "p", "output": f"line {n}", "n": n}) + "\n")
            f.flush()
            written.append(n)
            n += 1
            time.sleep(1 / rate)


def found(directory: Path) -> set[int]:
    seen: set[int] = set()
    for path in glob.glob(str(directory / "app.log*")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                with contextlib.suppress(ValueError, KeyError):
                    seen.add(json.loads(line)["n"])
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--rotations", type=int, default=3)
    args = ap.parse_args()
    binary = shutil.which("logrotate") or "/usr/sbin/logrotate"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        log = tmp / "app.log"
        filler = json.dumps({"prompt": "p", "output": "x" * 200}) + "\n"
        log.write_text(filler * (args.mb * 1_000_000 // len(filler)), encoding="utf-8")
        conf = tmp / "logrotate.conf"
        conf.write_text(f"{log} {{\n  rotate 9\n  copytruncate\n  nocompress\n}}\n")
        stop, written = threading.Event(), []
        t = threading.Thread(target=writer, args=(log, args.rate, stop, written))
        t.start()
        copies = []
        for _ in range(args.rotations):
            time.sleep(1.0)
            start = time.monotonic()
            subprocess.run([binary, "--force", "--state", str(tmp / "state"), str(conf)], check=True)
            copies.append(time.monotonic() - start)
        time.sleep(0.5)
        stop.set()
        t.join()
        lost = sorted(set(written) - found(tmp))
        print(
            json.dumps(
                {
                    "prefill_mb": args.mb,
                    "rate_per_s": args.rate,
                    "rotations": args.rotations,
                    "written": len(written),
                    "lost": len(lost),
                    "lost_per_rotation": round(len(lost) / args.rotations, 1),
                    "logrotate_s": [round(c, 2) for c in copies],
                }
            )
        )


if __name__ == "__main__":
    main()
