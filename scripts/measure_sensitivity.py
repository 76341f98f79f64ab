"""Sensitivity of the gate on REAL outputs: which verdict each known change gets, at several sizes.

Pairs (baseline -> candidate), all real SmolLM2-135M-Instruct outputs:

* ``tests/data/series_v1.jsonl`` (temperature 1.0) against ``series_v2..v4`` (0.7, 0.4, 0.2), against
  ``control_b.jsonl`` (an independent draw at 1.0: should be ok) and against ``control_b`` cut to its
  first 10 words per output (shorter only: should not decline);
* ``collector/demo_data/selftrain_series.jsonl`` v1 (the base model) against v2..v7 (fine-tuned on its
  own outputs for 1..6 generations; see docs/self_training.md);
* ``tests/data/selftrain_disjoint/series.jsonl`` v1 against v2..: fine-tuned on its own outputs to
  prompts disjoint from the probes (homogenisation across prompts; issue #17).

Each pair is compared on all its shared prompts and on the first 10 and 5 of them (sorted by id),
so the ``inconclusive`` rule shows where it starts.

    python scripts/measure_sensitivity.py                  # full suite (packaged embedder)
    python scripts/measure_sensitivity.py --no-embeddings  # the lexical-only verdict
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.comparison import compare_batches  # noqa: E402
from collector.metrics.base import Sample  # noqa: E402
from collector.metrics.registry import select_metrics  # noqa: E402
from collector.scoring import score_batch  # noqa: E402

DATA = ROOT / "tests" / "data"
SELFTRAIN = ROOT / "collector" / "demo_data" / "selftrain_series.jsonl"
DISJOINT = ROOT / "tests" / "data" / "selftrain_disjoint" / "series.jsonl"  # issue #17


def rows_of(path: Path, version: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if version is None or r.get("version") == version]


def cut10(text: str) -> str:
    return " ".join(text.split()[:10])


def pairs() -> list[tuple[str, list[dict], list[dict], Callable[[str], str] | None]]:
    v1 = rows_of(DATA / "series_v1.jsonl")
    out: list[tuple[str, list[dict], list[dict], Callable[[str], str] | None]] = [
        ("T 1.0 -> independent draw at 1.0", v1, rows_of(DATA / "control_b.jsonl"), None),
        ("T 1.0 -> same draw cut to 10 words", v1, rows_of(DATA / "control_b.jsonl"), cut10),
    ]
    for v, t in (("v2", "0.7"), ("v3", "0.4"), ("v4", "0.2")):
        out.append((f"T 1.0 -> T {t}", v1, rows_of(DATA / f"series_{v}.jsonl"), None))
    base = rows_of(SELFTRAIN, "v1")
    for g in range(2, 8):
        out.append((f"self-trained generation {g - 1}", base, rows_of(SELFTRAIN, f"v{g}"), None))
    base = rows_of(DISJOINT, "v1")
    last = max(int(r["version"].lstrip("v")) for r in rows_of(DISJOINT))
    for g in range(2, last + 1):
        out.append((f"disjoint-prompt self-trained gen. {g - 1}", base, rows_of(DISJOINT, f"v{g}"), None))
    return out


def samples(rows: list[dict], keep: set[str], edit: Callable[[str], str] | None) -> list[Sample]:
    return [
        Sample(
            prompt_id=r["prompt_id"], output=edit(r["output"]) if edit else r["output"], prompt=r["prompt"]
        )
        for r in rows
        if r["prompt_id"] in keep
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-embeddings", action="store_true")
    ap.add_argument("--sizes", default="all,10,5", help="prompt counts to try (default all,10,5)")
    args = ap.parse_args(argv)
    embed = None
    metrics = [m for m in select_metrics(None) if not (args.no_embeddings and m.needs_embeddings)]
    if not args.no_embeddings:
        from collector.embeddings import Embedder

        embed = Embedder("default").embed
    names = [m.name for m in metrics]
    sizes = args.sizes.split(",")
    print(f"{'pair':40s} " + " ".join(f"{s + ' prompts':>22s}" for s in sizes))
    t0 = time.perf_counter()
    for label, base_rows, cand_rows, edit in pairs():
        shared = sorted({r["prompt_id"] for r in base_rows} & {r["prompt_id"] for r in cand_rows})
        cells = []
        for size in sizes:
            keep = set(shared if size == "all" else shared[: int(size)])
            base = score_batch("base", samples(base_rows, keep, None), metrics=names, embed=embed, n_boot=2)
            cand = score_batch("cand", samples(cand_rows, keep, edit), metrics=names, embed=embed, n_boot=2)
            verdict = compare_batches(base, cand, metrics).verdict
            cells.append(f"{verdict.status} ({len(keep)})")
        print(f"{label:40s} " + " ".join(f"{c:>22s}" for c in cells), flush=True)
    print(f"took {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
