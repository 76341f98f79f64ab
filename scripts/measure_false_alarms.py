"""False-alarm rate of the verdict on REAL outputs of an unchanged model (issue: "the control is ok in
at least 95% of seeded repetitions").

The pool is ``collector/demo_data/control_series.jsonl``: the base SmolLM2-135M-Instruct, 24 probes,
three independent draws of 4 samples each (12 outputs per prompt, temperature 1.0).  Repetition r
shuffles each prompt's 12 outputs with seed r and splits them into two disjoint "versions" of 4
outputs per prompt, exactly the shape the collector stores, then runs the full default comparison
(every metric, both scopes, the packaged embedder, bootstrap seed r) and records the verdict.  Both
versions come from the same model, so every verdict that is not ``ok`` is a false alarm.

    python scripts/measure_false_alarms.py --reps 100                   # full suite
    python scripts/measure_false_alarms.py --reps 100 --no-embeddings   # the lexical-only verdict
    python scripts/measure_false_alarms.py --reps 200 --per-side 6    # 6 + 6: the per-prompt rule can fire

Prints the verdict counts and the false-alarm rate with a Wilson 95% interval.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.assessment import SCORE_BOOT
from collector.comparison import compare_batches
from collector.metrics.base import Sample
from collector.metrics.registry import select_metrics
from collector.scoring import score_batch

POOL = Path(__file__).resolve().parent.parent / "collector" / "demo_data" / "control_series.jsonl"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def split(pool: dict[str, list[dict]], per_side: int, rng: np.random.Generator) -> tuple[list, list]:
    """Two disjoint versions: per prompt, ``per_side`` outputs each, drawn without replacement."""
    a: list[Sample] = []
    b: list[Sample] = []
    for pid, rows in sorted(pool.items()):
        order = rng.permutation(len(rows))
        for side, idx in ((a, order[:per_side]), (b, order[per_side : 2 * per_side])):
            side.extend(
                Sample(prompt_id=pid, output=rows[i]["output"], prompt=rows[i]["prompt"]) for i in idx
            )
    return a, b


def load_pool(path: Path = POOL) -> dict[str, list[dict]]:
    """The pool's rows grouped by prompt id."""
    pool: dict[str, list[dict]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            pool.setdefault(row["prompt_id"], []).append(row)
    return pool


def cached_embedder(pool: dict[str, list[dict]]) -> Callable[[list[str]], np.ndarray]:
    """The packaged embedder, each distinct text of the pool embedded once."""
    from collector.embeddings import Embedder

    texts = sorted({r["output"] for rows in pool.values() for r in rows})
    vectors = dict(zip(texts, Embedder("default").embed(texts), strict=True))
    return lambda batch: np.stack([vectors[t] for t in batch])


def verdicts(
    pool: dict[str, list[dict]],
    reps: range,
    per_side: int = 4,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    progress: Callable[[int, Counter[str]], None] | None = None,
) -> list[tuple[int, str, list[str]]]:
    """(seed, status, reasons) of the default comparison of two same-model versions per seed."""
    metrics = (
        select_metrics(None)
        if embed is not None
        else [m for m in select_metrics(None) if not m.needs_embeddings]
    )
    out: list[tuple[int, str, list[str]]] = []
    counts: Counter[str] = Counter()
    for r in reps:
        a, b = split(pool, per_side, np.random.default_rng(r))
        names = [m.name for m in metrics]
        # the scores' own intervals are never used by a comparison (as in collector.assessment)
        base = score_batch("A", a, metrics=names, embed=embed, seed=r, n_boot=SCORE_BOOT)
        cand = score_batch("B", b, metrics=names, embed=embed, seed=r, n_boot=SCORE_BOOT)
        v = compare_batches(base, cand, metrics, seed=r).verdict
        out.append((r, v.status, v.reasons))
        counts[v.status] += 1
        if progress:
            progress(len(out), counts)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + reps - 1")
    ap.add_argument("--per-side", type=int, default=4, help="outputs per prompt in each version (default 4)")
    ap.add_argument(
        "--no-embeddings",
        action="store_true",
        help="lexical metrics only (the lexical-only verdict: collapse needs the lexical family at p < 0.01)",
    )
    ap.add_argument(
        "--pool", type=Path, default=POOL, help=f"JSONL of one model's outputs (default {POOL.name})"
    )
    args = ap.parse_args(argv)

    pool = load_pool(args.pool)
    embed = None if args.no_embeddings else cached_embedder(pool)
    t0 = time.perf_counter()

    def progress(done: int, counts: Counter[str]) -> None:
        print(
            f"\r{done}/{args.reps} repetitions, {done - counts['ok']} not ok "
            f"({(time.perf_counter() - t0) / done:.1f} s each)",
            end="",
            file=sys.stderr,
            flush=True,
        )

    seeds = range(args.first_seed, args.first_seed + args.reps)
    results = verdicts(pool, seeds, args.per_side, embed, progress)
    print(file=sys.stderr)
    counts = Counter(status for _, status, _ in results)
    n, k = len(results), len(results) - counts["ok"]
    lo, hi = wilson(k, n)
    print(f"pool: {args.pool.name}, {len(pool)} prompts x {args.per_side} outputs per version")
    print(f"verdicts over {n} repetitions: {dict(counts)}")
    print(f"false-alarm rate (not ok): {k}/{n} = {k / n:.1%} [95% CI {lo:.1%}, {hi:.1%}]")
    print(f"collapse_suspected: {counts['collapse_suspected']}/{n}")
    named = sum(
        any("prompts collapsed" in x and not x.startswith("0 of") for x in reasons)
        for _, _, reasons in results
    )
    print(f"repetitions naming a collapsed prompt: {named}/{n}")
    for r, status, reasons in results:
        if status != "ok":
            print(f"  rep {r}: {status}: {reasons[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
