"""The lexical suite with its intervals, at 10k / 50k / 200k outputs: current vs previous vs references.

For every size, each implementation runs in a fresh forked child of this one script (so each gets
its own peak-RSS figure) on the same batch, one after another:

* ``current``: ``score_corpus`` over the 16 lexical metrics, both scopes, 200 replicates (what
  ``collapse-watch score --no-embeddings`` computes);
* ``previous``: the same call on the metric package before issue #13 (``previous.py``), up to
  ``--previous-max`` outputs (it is quadratic-ish in practice: 347 s at 50k in the issue);
* ``reference``: the point estimates alone (no interval: the packages have none) of the
  ``diversity`` package's compression ratio, n-gram diversity and self-repetition (the last up
  to ``--reference-max``: it is quadratic).

It prints wall and CPU seconds, peak RSS, the scaling exponent between sizes, and for sizes where
both ran, whether every point estimate is identical and how far apart the intervals are (in units
of the previous interval's half-width).  gzip writes the clock into its header, which can move a
compressed size by a byte, so the children freeze ``time.time`` for values that compare exactly.

Data: ``scale_data.resampled`` (real SmolLM2 outputs, 40 prompts, drawn with replacement); with
``--data recombined`` the older generator of ``lexical_bench`` (sentences of real outputs
recombined, 10 outputs per prompt: mostly distinct texts and many prompts).

Run: ``python benchmarks/across_bench.py [--sizes 10000 50000 200000] [--previous-max 50000]``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_data import resampled

from collector.metrics.base import Sample


def _samples(kind: str, n: int) -> list[Sample]:
    if kind == "resampled":
        return resampled(n)
    from lexical_bench import make_texts

    return [Sample(f"p{i // 10:05d}", t) for i, t in enumerate(make_texts(n))]


def _run(job: tuple[str, str, int, int]) -> dict[str, Any]:
    impl, kind, n, n_boot = job
    time.time = lambda: 1_700_000_000.0  # gzip's header clock: see the module docstring
    samples = _samples(kind, n)
    if impl == "reference":
        from lexical_bench import _ref

        refs = [("compression", "compression_ratio"), ("ngram_diversity", "ngram_diversity_score")]
        texts = [s.output for s in samples]
        c0, t0 = time.process_time(), time.perf_counter()
        for mod, fn in refs:
            getattr(_ref(mod), fn)(texts)
        if n <= _run.reference_max:  # type: ignore[attr-defined]
            _ref("self_repetition").self_repetition_score(texts, verbose=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        values: dict[str, tuple[float, float, float]] = {}
    else:
        if impl == "previous":
            from previous import PACKAGE, load_previous

            suite = load_previous()
            base = sys.modules[f"{PACKAGE}.base"]
            lexical = sys.modules[f"{PACKAGE}.lexical"]
        else:
            from collector.metrics import base, lexical, suite
        corpus = base.build_corpus([base.Sample(s.prompt_id, s.output) for s in samples])
        c0, t0 = time.process_time(), time.perf_counter()
        result = suite.score_corpus(corpus, lexical.LEXICAL_METRICS, n_boot=n_boot)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        values = {f"{v.metric}/{v.scope}": (v.value, v.ci_low, v.ci_high) for v in result.values}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"impl": impl, "n": n, "wall": wall, "cpu": cpu, "rss_mb": rss, "values": values}


def _exponent(rows: list[dict[str, Any]], key: str) -> str:
    pts = [(r["n"], r[key]) for r in rows]
    if len(pts) < 2:
        return ""
    xs = [math.log(n) for n, _ in pts]
    ys = [math.log(max(v, 1e-9)) for _, v in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return f"{slope:.2f}"


# Metrics whose definition changed after the previous implementation's commit: not comparable.
REDEFINED = ("ngram_entropy",)  # issue #16: normalised, H / log(total n-grams)


def _agreement(cur: dict[str, Any], prev: dict[str, Any]) -> str:
    same = {
        k: a for k, a in cur["values"].items() if not str(k).startswith(REDEFINED) and k in prev["values"]
    }
    identical = all(
        a[0] == b[0] or (math.isnan(a[0]) and math.isnan(b[0]))
        for k, a in same.items()
        for b in [prev["values"][k]]
    )
    worst, name = 0.0, ""
    for k, a in same.items():
        b = prev["values"][k]
        half = (b[2] - b[1]) / 2
        if half > 0 and math.isfinite(half):
            d = max(abs(a[1] - b[1]), abs(a[2] - b[2])) / half
            if d > worst:
                worst, name = d, k
    return (
        f"points identical: {identical}; largest interval difference {worst:.3f} half-widths ({name}); "
        f"{', '.join(REDEFINED)}* left out (redefined since)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    ap.add_argument("--previous-max", type=int, default=10_000)
    ap.add_argument("--reference-max", type=int, default=10_000)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--data", choices=["resampled", "recombined"], default="resampled")
    args = ap.parse_args()
    _run.reference_max = args.reference_max  # type: ignore[attr-defined]
    ctx = mp.get_context("fork")
    rows: dict[str, list[dict[str, Any]]] = {"current": [], "previous": [], "reference": []}
    print(f"data: {args.data}; {args.bootstrap} replicates; machine load at start: {_load()}")
    print("| n | implementation | wall s | CPU s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for n in args.sizes:
        for impl in ("current", "previous", "reference"):
            if impl == "previous" and n > args.previous_max:
                print(f"| {n:,} | previous | not run (> --previous-max) | | |")
                continue
            with ctx.Pool(1) as pool:
                r = pool.apply(_run, ((impl, args.data, n, args.bootstrap),))
            rows[impl].append(r)
            note = " (self-repetition not run)" if impl == "reference" and n > args.reference_max else ""
            print(
                f"| {n:,} | {impl}{note} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['rss_mb']:.0f} |", flush=True
            )
        prev = [r for r in rows["previous"] if r["n"] == n]
        if prev:
            print(f"|   | current vs previous | {_agreement(rows['current'][-1], prev[0])} | | |", flush=True)
    for impl, rs in rows.items():
        if len(rs) >= 2:
            sizes = ", ".join(f"{r['n']:,}" for r in rs)
            print(
                f"scaling exponent ({impl}, {sizes}): wall {_exponent(rs, 'wall')}, CPU {_exponent(rs, 'cpu')}"
            )
    print(f"machine load at end: {_load()}")


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
