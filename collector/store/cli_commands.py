"""Plain functions behind `collapse-watch db ...` and `score --store`; the CLI wires and prints them
(the history table is read in ``collector.store.history`` and formatted in ``collector.render.history``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from collector.embeddings import EmbeddingIdentity
from collector.metrics.base import Sample
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


def sample_records(samples: list[Sample]) -> list[SampleRecord]:
    """Scored samples as store records, numbered in the order given (``score --store``, the API)."""
    return [
        SampleRecord(prompt_key=s.prompt_id, prompt=s.prompt, output=s.output, sample_index=i)
        for i, s in enumerate(samples)
    ]


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
    embedding_identity: EmbeddingIdentity | None = None,
    on_begun: Callable[[int], None] | None = None,
) -> int:
    """`score FILE --store`: record the file as one run of ``model``/``version``; returns the run id.

    Samples and metric values go through the same API the collector uses. If storing the samples
    fails, the run is closed as 'failed' with the error and the exception propagates.
    ``on_begun(run_id)`` is called once the run exists, so a caller can close it later when a
    database fault refused even the 'failed' close (the API's ``History``).
    """
    store.mark_interrupted_runs(stale_after=timedelta(hours=6))
    rid = store.begin_run(
        model, version, config_hash=config_hash, source_kind=source_kind, version_source=version_source
    )
    if on_begun is not None:
        on_begun(rid)
    try:
        for i in range(0, len(samples), 2000):
            store.add_samples(rid, samples[i : i + 2000])
    except Exception as exc:
        store.finish_run(rid, "failed", f"{type(exc).__name__}: {exc}")
        raise
    n_err = sum(1 for s in samples if s.output is None or s.error)
    store.finish_run(
        rid, "partial" if n_err else "succeeded", None, result, embedding_identity=embedding_identity
    )
    return rid
