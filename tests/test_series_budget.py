"""The series budget: at the default detail level /metrics exports at most 300 series per model,
however many versions a model has, with every default metric in both scopes (issue #14)."""

from __future__ import annotations

from pathlib import Path

from file_module import load_module
from store_helpers import migrated_store

from collector.metrics.registry import all_metrics
from collector.vocabulary import HEADLINE_METRICS

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "exporter_bench.py"
BUDGET = 300


def test_default_detail_stays_within_300_series_per_model(tmp_path: Path) -> None:
    bench = load_module(BENCH)
    store = migrated_store(f"sqlite:///{tmp_path / 'fleet.db'}")
    bench.populate(store, models=2, versions=12)
    summary = bench.series_per_model(bench.scrape(store, "summary"))
    full = bench.series_per_model(bench.scrape(store, "full"))
    assert set(summary) == {"model-000", "model-001"}
    assert max(summary.values()) <= BUDGET, summary
    # the bound is not met by leaving metrics out: every metric and scope of the latest version is there
    text = bench.scrape(store, "summary").decode()
    for m in all_metrics():
        for scope in ("within", "across"):
            assert (
                f'collapse_watch_diversity{{metric="{m.name}",model="model-000",scope="{scope}",version="v12"}}'
                in text
            )
    # what the dashboards show of the headline metrics is in the budget too (docs/metrics.md)
    for m in HEADLINE_METRICS:
        for scope in ("within", "across"):
            where = f'metric="{m}",model="model-000"'
            assert f'collapse_watch_diversity_ci_lower{{{where},scope="{scope}",version="v12"}}' in text
            assert (
                f'collapse_watch_diversity_change_p_value{{{where},reference="baseline",scope="{scope}",version="v12"}}'
                in text
            )
    assert min(full.values()) > 10 * BUDGET  # "full" is the old, unbounded export
