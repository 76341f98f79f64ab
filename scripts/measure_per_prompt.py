"""Collapse on a few prompts (issue #26): the verdict's dose-response with the per-prompt rule on
and off, the forced template opening, and the per-prompt floors' calibration, on REAL outputs.

Data: real SmolLM2-135M-Instruct outputs for the first 24 default probes (40 new tokens, CPU):

* healthy: ``collector/demo_data/control_series.jsonl``, 12 outputs per prompt at temperature 1.0
  (three independent draws of 4; the pool of ``scripts/measure_false_alarms.py``);
* collapsed: ``tests/data/per_prompt/t02.jsonl``, 6 outputs per prompt at temperature 0.2 (seed 2602,
  ``scripts/generate_samples.py --prompts 24 -k 6 --temperature 0.2 --max-new-tokens 40``).

The baseline is the first 6 healthy outputs of each prompt.  The candidate with K collapsed prompts
answers K prompts (a fixed seeded order) with their 6 T 0.2 outputs and the other 24 − K with the
other 6 healthy outputs.  Each K is judged twice: the default verdict (per-prompt rule on) and with
``min_collapsed_prompts=0`` (the rule off: the verdict before issue #26).

    python scripts/measure_per_prompt.py                    # lexical-only and full suite
    python scripts/measure_per_prompt.py --no-embeddings    # lexical-only
    python scripts/measure_per_prompt.py --calibrate 50     # healthy per-prompt change over 50 splits
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.comparison import compare_batches
from collector.metrics.base import Sample
from collector.metrics.registry import select_metrics
from collector.scoring import score_batch
from collector.trends import Thresholds

ROOT = Path(__file__).resolve().parent.parent
HEALTHY = ROOT / "collector" / "demo_data" / "control_series.jsonl"
COLLAPSED = ROOT / "tests" / "data" / "per_prompt" / "t02.jsonl"
PER_SIDE = 6
KS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 24)
OPENING = "Certainly! Here is my answer:"


def grouped(path: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.setdefault(row["prompt_id"], []).append(row)
    return out


def samples(rows: list[dict], edit: Callable[[str], str] = lambda t: t) -> list[Sample]:
    return [Sample(r["prompt_id"], edit(r["output"]), r["prompt"]) for r in rows]


def sides(k: int, healthy: dict[str, list[dict]], cold: dict[str, list[dict]], order: list[str]):
    """(baseline rows, candidate rows) with the first ``k`` prompts of ``order`` collapsed."""
    n = PER_SIDE
    base = [r for pid in sorted(healthy) for r in healthy[pid][:n]]
    hit = set(order[:k])
    cand = [r for pid in sorted(healthy) for r in (cold[pid][:n] if pid in hit else healthy[pid][n : 2 * n])]
    return base, cand


def cached_embedder(texts: list[str]) -> Callable[[list[str]], np.ndarray]:
    from collector.embeddings import Embedder

    unique = sorted(set(texts))
    emb = Embedder("default")
    vectors = dict(zip(unique, emb.embed(unique), strict=True))

    def embed(batch: list[str]) -> np.ndarray:
        missing = sorted({t for t in batch if t not in vectors})
        if missing:
            vectors.update(zip(missing, emb.embed(missing), strict=True))
        return np.stack([vectors[t] for t in batch])

    return embed


def judge(base_rows, cand_rows, names, embed, th: Thresholds, seed: int = 0):
    base = score_batch("base", samples(base_rows), metrics=names, embed=embed, n_boot=2, seed=seed)
    cand = score_batch("cand", samples(cand_rows), metrics=names, embed=embed, n_boot=2, seed=seed)
    return compare_batches(base, cand, select_metrics(names), thresholds=th, seed=seed, embed=embed)


def calibrate(healthy: dict[str, list[dict]], reps: int, embed: Callable | None = None) -> None:
    """Per-prompt change of distinct_2 (pp) between two disjoint ``PER_SIDE``-output sets of the
    healthy outputs, over ``reps`` random splits: what the floor must exceed."""
    from collector.metrics.registry import select_metrics as sel

    d2 = next(m for m in sel(["distinct_2"]))
    diffs = []
    for r in range(reps):
        rng = np.random.default_rng(r)
        for rows in healthy.values():
            idx = rng.permutation(len(rows))
            a = [rows[i]["output"] for i in idx[:PER_SIDE]]
            b = [rows[i]["output"] for i in idx[PER_SIDE : 2 * PER_SIDE]]
            diffs.append(d2.fn(b) - d2.fn(a))
    if embed is not None:
        from collector.metrics.embedding import vendi_score

        ratios = []
        for r in range(reps):
            rng = np.random.default_rng(r)
            for rows in healthy.values():
                idx = rng.permutation(len(rows))
                v = embed([rows[i]["output"] for i in idx[: 2 * PER_SIDE]])
                ratios.append(vendi_score(v[PER_SIDE:]) / vendi_score(v[:PER_SIDE]))
        q = np.quantile(np.asarray(ratios), [0.001, 0.01, 0.05])
        print(
            f"healthy per-prompt vendi_score ratio: quantiles 0.1% x{q[0]:.3f}, 1% x{q[1]:.3f}, 5% x{q[2]:.3f}"
        )
    x = np.asarray(diffs) * 100
    print(
        f"healthy per-prompt distinct_2 change over {reps} splits x {len(healthy)} prompts: SD {x.std():.2f} pp, "
    )
    print(
        f"  quantiles 0.1% {np.quantile(x, 0.001):+.1f}, 1% {np.quantile(x, 0.01):+.1f}, 5% {np.quantile(x, 0.05):+.1f} pp"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-embeddings", action="store_true", help="the lexical-only verdict only")
    ap.add_argument("--full-only", action="store_true", help="the full-suite verdict only")
    ap.add_argument("--ks", default=",".join(map(str, KS)), help="collapsed-prompt counts to judge")
    ap.add_argument("--calibrate", type=int, default=0, help="only print the floors' calibration")
    args = ap.parse_args(argv)
    healthy = grouped(HEALTHY)
    if args.calibrate:
        texts = [r["output"] for rows in healthy.values() for r in rows]
        calibrate(healthy, args.calibrate, None if args.no_embeddings else cached_embedder(texts))
        return 0
    cold = grouped(COLLAPSED)
    order = [str(p) for p in np.random.default_rng(26).permutation(sorted(healthy))]
    ks = [int(k) for k in args.ks.split(",")]
    lexical = [m.name for m in select_metrics(None) if not m.needs_embeddings]
    modes: list[tuple[str, list[str] | None, Callable | None]] = (
        [] if args.full_only else [("lexical-only", lexical, None)]
    )
    if not args.no_embeddings:
        every = [r["output"] for rows in (*healthy.values(), *cold.values()) for r in rows]
        every += [f"{OPENING} {t}" for t in every]
        modes.append(("full suite", None, cached_embedder(every)))
    on, off = Thresholds(), Thresholds(min_collapsed_prompts=0)
    for mode, names, embed in modes:
        names = names or [m.name for m in select_metrics(None)]
        print(f"\n## {mode}: {len(healthy)} prompts, {PER_SIDE} outputs per prompt per side")
        print("| K collapsed | rule off | rule on | prompts named | first reason (rule on) |")
        print("|---|---|---|---|---|")
        for k in ks:
            t0 = time.perf_counter()
            b, c = sides(k, healthy, cold, order)
            with_rule = judge(b, c, names, embed, on)
            without = judge(b, c, names, embed, off)
            p = with_rule.prompts
            named = f"{len(p.collapsed)} of {p.n_prompts}" if p is not None else "–"
            hit = {f.prompt_id for f in p.collapsed} if p is not None else set()
            right = len(hit & set(order[:k]))
            print(
                f"| {k} | {without.verdict.status} | {with_rule.verdict.status} | {named} ({right} right) | "
                f"{with_rule.verdict.reasons[0][:110]} |"
            )
            print(f"  ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        base, plain = sides(0, healthy, cold, order)
        cand = [dict(r, output=f"{OPENING} {r['output']}") for r in plain]
        forced = judge(base, cand, names, embed, on)
        print(f"\nforced opening {OPENING!r} on healthy outputs: {forced.verdict.status}")
        for line in forced.verdict.reasons[:2]:
            print(f"  - {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
