"""Give up on an unreachable source early: N failed requests in a row end the run.

A dead endpoint otherwise costs every request its full retry schedule (160 samples took 148 s
against a closed port); after ``FAIL_FAST_AFTER`` consecutive failures with no success in between
the run is failed with the last error, and the remaining requests are cancelled.  One success
resets the count, so a flaky endpoint is not given up on.
"""

from __future__ import annotations

from collector.sources.base import SampleOutcome

FAIL_FAST_AFTER = 8


class SourceUnreachable(RuntimeError):
    """Raised by the runner when a source failed ``FAIL_FAST_AFTER`` requests in a row."""


class ConsecutiveFailures:
    """Counts failed outcomes in a row; :meth:`check` raises once ``limit`` is reached."""

    def __init__(self, limit: int = FAIL_FAST_AFTER) -> None:
        self.limit = limit
        self.count = 0

    def check(self, outcome: SampleOutcome) -> None:
        if outcome.ok:
            self.count = 0
            return
        self.count += 1
        if self.count >= self.limit:
            raise SourceUnreachable(
                f"gave up after {self.count} failed requests in a row (no success in between); "
                f"last error: {outcome.error}"
            )
