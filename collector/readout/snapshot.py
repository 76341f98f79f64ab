"""The ``Snapshot`` one scrape exports, and the one read that builds it.

A ``Snapshot`` is the store's ``Overview`` plus the reliability counts (quarantined records, blank
outputs) and what only the config knows (schedule intervals, the detail level).
``load_snapshot(store)`` is the one read path of ``/metrics`` (``Store.overview()`` and two counts,
a handful of queries, typed rows that the exporter and the reliability series render unchanged).  ``SnapshotReader`` is what ``serve-metrics`` hands the collector:
it reads through a read-only engine (no write lock taken) and answers within ``timeout`` seconds
whatever the database is doing: when a read is slower (a writer holds a lock, a long checkpoint),
the scrape gets the last good snapshot with its age (``collapse_watch_snapshot_age_seconds``),
and only when there has never been one does it fail (``collapse_watch_up 0``).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Literal

from collector.store.api import Store
from collector.store.engine import make_engine
from collector.store.overview import Overview

Detail = Literal["summary", "full"]
DETAILS: tuple[str, ...] = ("summary", "full")

# Versions exported per model by detail level (the baseline is always added).
MAX_VERSIONS: dict[str, int] = {"summary": 5, "full": 10}
SCRAPE_READ_TIMEOUT = 1.5  # seconds a scrape waits for a fresh read before serving the last one


@dataclass
class Snapshot(Overview):
    """Everything one scrape exports: the store's ``Overview`` plus the reliability counts and what
    only the config knows."""

    intervals: dict[str, float] = field(default_factory=dict)  # model -> schedule interval (s)
    detail: Detail = "summary"
    age_seconds: float = 0.0  # how old the rows are when a busy store made the scrape reuse them
    # the reliability counts (None: not read): (model, source) -> quarantined records, and
    # model -> blank share of its latest run's successful outputs
    quarantined: dict[tuple[str, str], int] | None = None
    blank_ratios: dict[str, float] | None = None


def load_snapshot(
    store: Store,
    *,
    detail: Detail = "summary",
    max_versions: int | None = None,
    intervals: dict[str, float] | None = None,
    max_durations: int = 1000,
    reliability: bool = False,
) -> Snapshot:
    """Everything one scrape exports; ``intervals`` maps model -> schedule interval in seconds;
    ``reliability``: read the quarantine and blank-output counts too (two more queries: what
    ``/metrics`` serves, ``collector.readout.server.store_registry``)."""
    if detail not in DETAILS:
        raise ValueError(f"metrics detail must be one of {', '.join(DETAILS)}, got {detail!r}")
    ov = store.overview(
        max_versions=MAX_VERSIONS[detail] if max_versions is None else max_versions,
        max_durations=max_durations,
        latest_metrics_only=detail == "summary",
    )
    fields = {f.name: getattr(ov, f.name) for f in dataclasses.fields(ov)}
    return Snapshot(
        **fields,
        intervals=dict(intervals or {}),
        detail=detail,
        quarantined=store.quarantine_counts() if reliability else None,
        blank_ratios=store.last_run_blank_ratios() if reliability else None,
    )


def read_only_store(store: Store) -> Store:
    """The same database through an engine whose reads take no write lock."""
    url = store.engine.url.render_as_string(hide_password=False)
    return Store(engine=make_engine(url, read_only=True))


class SnapshotReader:
    """Calls ``load`` in a worker thread; a scrape waits at most ``timeout`` s (see the module doc)."""

    def __init__(self, load: Callable[[], Snapshot], timeout: float = SCRAPE_READ_TIMEOUT) -> None:
        self._load = load
        self._timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot")
        self._lock = threading.RLock()  # a read that is done at once runs _keep under the lock
        self._pending: Future[Snapshot] | None = None
        self._last: tuple[Snapshot, float] | None = None

    def _keep(self, fut: Future[Snapshot]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            with self._lock:
                self._last = (fut.result(), time.monotonic())

    def __call__(self) -> Snapshot:
        with self._lock:
            if self._pending is None or self._pending.done():  # one read in flight at most
                self._pending = self._pool.submit(self._load)
                self._pending.add_done_callback(self._keep)
            pending = self._pending
        try:
            return pending.result(timeout=self._timeout)
        except FutureTimeout:
            with self._lock:
                last = self._last
            if last is None:
                raise TimeoutError(
                    f"the store did not answer within {self._timeout:.1f}s and no earlier snapshot exists"
                ) from None
            snap, at = last
            return dataclasses.replace(snap, age_seconds=time.monotonic() - at)
