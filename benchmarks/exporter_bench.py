"""Scrape cost and series count of /metrics at fleet scale: 50 models x 10 versions, every default metric.

    python benchmarks/exporter_bench.py [--models 50] [--versions 10] [--detail both] [--url sqlite:///x.db]

An existing --url with models in it is scraped as it is (no refill).

Fills a store through the real ``Store`` API (runs with every default metric in both scopes,
comparisons vs baseline and previous version, a verdict per version, trends), then times scrapes of
the real collector (``load_snapshot`` + ``StoreCollector`` + the text exposition) at each detail
level and prints series, bytes and the median scrape time (wall and CPU: on a shared machine the
CPU time is the fairer figure).  ``tests/test_series_budget.py`` uses
``populate`` to hold the per-model series bound.  Figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from collector.metrics.registry import all_metrics
from collector.metrics.result import MetricValue, SuiteResult
from collector.readout.exporter import StoreCollector
from collector.readout.exposition import render
from collector.readout.snapshot import load_snapshot
from collector.store import SampleRecord, Store, migrate
from collector.store.assessments import VerdictRecord
from collector.vocabulary import ChangeRow, TrendRow


def _result(level: float) -> SuiteResult:
    values = [
        MetricValue(m.name, scope, level, level * 0.95, level * 1.05, 96, 24, m.family, m.higher_is_diverse)
        for m in all_metrics()
        for scope in ("within", "across")
    ]
    return SuiteResult(96, 24, values)


def populate(store: Store, models: int, versions: int) -> None:
    """``models`` x ``versions`` assessed versions, every default metric in both scopes."""
    metrics = all_metrics()
    for i in range(models):
        model = f"model-{i:03d}"
        runs: list[int] = []
        for v in range(versions):
            rid = store.begin_run(model, f"v{v + 1}", source_kind="file")
            store.add_samples(rid, [SampleRecord("p1", "Say something.", f"output {v}", sample_index=0)])
            store.finish_run(rid, "succeeded", None, _result(1.0 - 0.01 * v))
            comparisons = [
                ChangeRow(model, f"v{v + 1}", m.name, scope, ref, -0.01, -0.03, 0.01, 0.2, False, 24, ref_run)
                for ref, ref_run in (
                    ("baseline", runs[0] if runs else rid),
                    ("previous", runs[-1] if runs else rid),
                )
                if runs
                for scope in ("within", "across")
                for m in metrics
            ]
            runs.append(rid)
            details = {"trend_family_reached": {"lexical": False, "embedding": False}, "trending_down": {}}
            store.save_assessment(rid, comparisons, VerdictRecord("ok", ["no significant decline"], details))
        store.save_trends(
            model,
            [
                TrendRow(model, m.name, scope, -0.001, 0.5, min(versions, 5), -0.01, 0.01, f"v{versions}")
                for m in metrics
                for scope in ("within", "across")
            ],
        )


def scrape(store: Store, detail: str) -> bytes:
    registry = CollectorRegistry()
    registry.register(StoreCollector(lambda: load_snapshot(store, detail=detail)))  # type: ignore[arg-type]
    return render([registry])


def series_per_model(text: bytes) -> dict[str, int]:
    """Series (sample lines) per ``model`` label value."""
    counts: dict[str, int] = {}
    for line in text.decode().splitlines():
        if line.startswith("#") or 'model="' not in line:
            continue
        model = line.split('model="', 1)[1].split('"', 1)[0]
        counts[model] = counts.get(model, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=50)
    ap.add_argument("--versions", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--detail", choices=("summary", "full", "both"), default="both")
    ap.add_argument("--url", default=None, help="database URL (default: a temporary SQLite file)")
    args = ap.parse_args(argv)
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    migrate.upgrade(url)
    store = Store(url)
    t0 = time.perf_counter()
    populate(store, args.models, args.versions)
    print(
        f"filled {args.models} models x {args.versions} versions in {time.perf_counter() - t0:.1f}s ({url})"
    )
    ap_details = ("summary", "full") if args.detail == "both" else (args.detail,)
    for detail in ap_details:
        times, cpu = [], []
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            text = scrape(store, detail)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        per_model = series_per_model(text)
        lines = sum(1 for ln in text.splitlines() if not ln.startswith(b"#"))
        print(
            f"{detail:8s} series/model max {max(per_model.values())}, lines {lines}, "
            f"{len(text) / 1e6:.2f} MB, scrape median {statistics.median(times):.3f}s "
            f"(min {min(times):.3f}s, max {max(times):.3f}s), CPU median {statistics.median(cpu):.3f}s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
