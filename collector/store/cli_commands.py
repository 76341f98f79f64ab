"""Plain functions behind `collapse-watch db ...` and `history`; the CLI wires and prints them."""

from __future__ import annotations

import math
from datetime import timedelta

from collector.metrics.result import SuiteResult
from collector.store import migrate
from collector.store.api import SampleRecord, Store


def db_upgrade(url: str | None, revision: str = "head") -> None:
    """Upgrade the database to ``revision``."""
    migrate.upgrade(url, revision)


def db_downgrade(url: str | None, revision: str) -> None:
    """Downgrade the database to ``revision``."""
    migrate.downgrade(url, revision)


def db_current(url: str | None) -> str:
    """The database's current revision ('none' when unmigrated)."""
    return migrate.current(url)


def history_table(store: Store, model: str, scope: str = "within") -> tuple[list[str], list[list[str]]]:
    """A metric-by-version table of the latest completed values: (columns, rows), no printing."""
    rows = [r for r in store.latest_metrics(model) if r["scope"] == scope]
    versions: list[str] = []
    for r in sorted(rows, key=lambda r: r["version_ordinal"]):
        if r["version"] not in versions:
            versions.append(r["version"])
    cells: dict[str, dict[str, str]] = {}
    for r in rows:
        v = r["value"]
        cells.setdefault(r["metric"], {})[r["version"]] = "n/a" if v is None or math.isnan(v) else f"{v:.4f}"
    table = [[k, *(cells[k].get(v, "") for v in versions)] for k in sorted(cells)]
    verdicts = [_verdict_of_version(store, model, v) for v in versions]
    if any(verdicts):
        table.append(["verdict", *(v or "" for v in verdicts)])
    return ["metric", *versions], table


def _verdict_of_version(store: Store, model: str, version: str) -> str | None:
    """The verdict stored for the latest completed run of ``version`` (None before assessment)."""
    run_id = store.latest_completed_run(model, version)
    verdict = store.verdict_of(run_id) if run_id is not None else None
    return verdict.status if verdict is not None else None


def record_scored_file(
    store: Store,
    model: str,
    version: str,
    samples: list[SampleRecord],
    result: SuiteResult | None,
    *,
    config_hash: str | None = None,
    source_kind: str = "file",
    version_source: str = "file",
) -> int:
    """`score FILE --store`: record the file as one run of ``model``/``version``; returns the run id.

    Samples and metric values go through the same API the collector uses. If storing the samples
    fails, the run is closed as 'failed' with the error and the exception propagates.
    """
    store.mark_interrupted_runs(stale_after=timedelta(hours=6))
    rid = store.begin_run(
        model, version, config_hash=config_hash, source_kind=source_kind, version_source=version_source
    )
    try:
        for i in range(0, len(samples), 2000):
            store.add_samples(rid, samples[i : i + 2000])
    except Exception as exc:
        store.finish_run(rid, "failed", f"{type(exc).__name__}: {exc}")
        raise
    n_err = sum(1 for s in samples if s.output is None or s.error)
    store.finish_run(rid, "partial" if n_err else "succeeded", None, result)
    return rid
