"""Helpers shared by the store tests: a migrated Store and a small SuiteResult."""

from __future__ import annotations

from collector.metrics.result import MetricValue, SuiteResult
from collector.store import SampleRecord, Store, migrate


def migrated_store(url: str) -> Store:
    migrate.upgrade(url)
    return Store(url)


def result(value: float, metric: str = "distinct_2") -> SuiteResult:
    vals = [
        MetricValue(metric, "within", value, value - 0.1, value + 0.1, 4, 2, "lexical", True),
        MetricValue(metric, "across", value / 2, value / 2 - 0.1, value / 2 + 0.1, 4, 2, "lexical", True),
    ]
    return SuiteResult(4, 2, vals, per_prompt={metric: {"p1": value, "p2": float("nan")}})


def samples(outputs: list[str | None]) -> list[SampleRecord]:
    return [
        SampleRecord(
            f"p{i % 2 + 1}",
            f"prompt {i % 2 + 1}",
            o,
            sample_index=i // 2,
            latency_seconds=0.5,
            error=None if o is not None else "timeout",
        )
        for i, o in enumerate(outputs)
    ]


def full_run(store: Store, model: str, version: str, value: float, status: str = "succeeded") -> int:
    rid = store.begin_run(model, version, config_hash="abc", source_kind="file")
    store.add_samples(rid, samples(["same", "same", "other", None]))
    store.finish_run(rid, status, None if status == "succeeded" else "boom", result(value))
    return rid
