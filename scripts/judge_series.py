"""Judge a series of versions against its first: key changes, the verdict, and which rule set it.

    python scripts/judge_series.py tests/data/selftrain_disjoint/series.jsonl [--no-embeddings]

The file holds one model's versions (``version`` field: v1, v2, ...; ``prompt_id``, ``prompt``,
``output``), as ``scripts/self_train.py`` writes them. Every later version is compared with v1 the
way ``collapse-watch compare`` does (default suite and thresholds, packaged embedder), and one row
per version shows the headline changes in both scopes, the tail-coverage statistics, the verdict
and, when the pooled + tail rule (issue #17) raised it, from what.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from collector.comparison import BatchComparison, compare_batches  # noqa: E402
from collector.metrics.base import Sample  # noqa: E402
from collector.metrics.registry import select_metrics  # noqa: E402
from collector.scoring import score_batch  # noqa: E402
from collector.trends import format_change  # noqa: E402

COLUMNS = [  # (metric, scope)
    ("distinct_2", "within"),
    ("distinct_2", "across"),
    ("self_bleu", "across"),
    ("compression_ratio", "across"),
    ("embedding_mean_distance", "within"),
    ("embedding_mean_distance", "across"),
    ("tail_ngram_retention_1", "across"),
    ("tail_ngram_retention_2", "across"),
    ("tail_knn_recall", "across"),
]


def versions(path: Path) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            out.setdefault(r["version"], []).append(Sample(r["prompt_id"], r["output"], r.get("prompt")))
    return dict(sorted(out.items(), key=lambda kv: int(kv[0].lstrip("v"))))


def cell(bc: BatchComparison, metric: str, scope: str) -> str:
    c = bc.by_scope(scope).get(metric)
    if c is None:
        return "–"
    mark = "*" if c.significant_decline else ""
    return f"{format_change(metric, c.change)}{mark}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("series", type=Path)
    ap.add_argument("--no-embeddings", action="store_true")
    args = ap.parse_args(argv)
    metrics = [m for m in select_metrics(None) if not (args.no_embeddings and m.needs_embeddings)]
    names = [m.name for m in metrics]
    embed = None
    if not args.no_embeddings:
        from collector.embeddings import Embedder

        embed = Embedder("default")
    by_version = versions(args.series)
    labels = list(by_version)
    scored = {v: score_batch(v, s, metrics=names, embed=embed, n_boot=2) for v, s in by_version.items()}
    table = Table(title=f"{args.series}: each version vs {labels[0]} (* = significant decline)")
    table.add_column("version")
    for metric, scope in COLUMNS:
        if embed is None and metric.startswith("embedding"):
            continue
        table.add_column(f"{metric} ({scope})", justify="right")
    table.add_column("verdict")
    table.add_column("raised from")
    for v in labels[1:]:
        bc = compare_batches(scored[labels[0]], scored[v], metrics)
        evidence = bc.verdict.details.get("pooled_and_tail") or {}
        cells = [cell(bc, m, s) for m, s in COLUMNS if not (embed is None and m.startswith("embedding"))]
        table.add_row(v, *cells, bc.verdict.status, str(evidence.get("raised_from") or ""))
    Console(width=250).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
