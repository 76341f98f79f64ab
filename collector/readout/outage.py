"""One log line when a database outage starts and one when it ends, never one per scrape.

``/metrics`` reads the store on every scrape (every 15-30 s, from each Prometheus); while the
database is down each read fails. ``OutageLog`` turns that stream of failures into two lines: a
warning naming the first error (its first line, no traceback) and, once a read succeeds again, an
info line saying how long it lasted. Thread-safe; one instance is shared by every collector of a
registry, so an outage is one line however many families fail.
"""

from __future__ import annotations

import logging
import threading
import time


class OutageLog:
    """Failures and successes of named readers (``source``): the outage starts with the first
    failure of any and ends when every one that failed has read again."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._lock = threading.Lock()
        self._failing: set[str] = set()
        self._since: float | None = None

    def failed(self, exc: BaseException, source: str = "") -> None:
        """A read failed: logged only if it is the first failure since every reader was fine."""
        from collector.store.errors import first_line

        with self._lock:
            starts = not self._failing
            self._failing.add(source)
            if starts:
                self._since = time.monotonic()
        if starts:
            self._log.warning(
                "cannot read %s: %s (logged once; its end is logged too)", self._what, first_line(exc)
            )

    def ok(self, source: str = "") -> None:
        """A read succeeded: once no reader fails any more, one line says how long it lasted."""
        with self._lock:
            if source not in self._failing:
                return
            self._failing.discard(source)
            ends, since = not self._failing, self._since
        if ends and since is not None:
            self._log.info("%s readable again after %.0fs", self._what, time.monotonic() - since)
