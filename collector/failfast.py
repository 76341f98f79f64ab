"""Give up on an unreachable source early: N failed requests before any success end the run.

A dead endpoint otherwise costs every request its full retry schedule (160 samples took 148 s
against a closed port); when the first ``FAIL_FAST_AFTER`` outcomes of a run all failed, the run is
failed with the last error and the remaining requests are cancelled.  Once a request succeeded the
endpoint is known to work and the run goes on (its failures are recorded, and ``min_samples``
decides), so a flaky or restarting endpoint is not given up on.
"""

from __future__ import annotations

from collector.sources.base import SampleOutcome

FAIL_FAST_AFTER = 8


class SourceUnreachable(RuntimeError):
    """Raised by the runner when a source failed ``FAIL_FAST_AFTER`` requests in a row."""


class ConsecutiveFailures:
    """Counts failed outcomes until the first success; :meth:`check` raises once ``limit`` is reached."""

    def __init__(self, limit: int = FAIL_FAST_AFTER) -> None:
        self.limit = limit
        self.count = 0
        self.reached = False  # a request succeeded: the endpoint works, never give up

    def check(self, outcome: SampleOutcome) -> None:
        if self.reached or outcome.ok:
            self.reached = True
            return
        self.count += 1
        if self.count >= self.limit:
            raise SourceUnreachable(
                f"gave up after {self.count} failed requests in a row (no success in between); "
                f"last error: {outcome.error}"
            )
