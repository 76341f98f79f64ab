"""The stop conditions of a run: the scheduler's stop event and the model's deadline."""

from __future__ import annotations

import threading
import time

from collector.config import ModelConfig


class _Watch:
    """Stop conditions of a run: the stop event and the deadline; cancels the source's requests."""

    def __init__(self, stop: threading.Event, deadline: float | None, cancel: threading.Event | None) -> None:
        self.stop = stop
        self.deadline = deadline
        self.cancel = cancel
        self._timer: threading.Thread | None = None
        self._done = threading.Event()
        if cancel is not None:
            self._timer = threading.Thread(target=self._relay, daemon=True, name="run-watch")
            self._timer.start()

    def _relay(self) -> None:
        while not self._done.wait(0.2):
            if self.due():
                assert self.cancel is not None
                self.cancel.set()
                return

    def due(self) -> bool:
        return self.stop.is_set() or (self.deadline is not None and time.monotonic() > self.deadline)

    def reason(self, model: ModelConfig) -> str:
        if self.stop.is_set():
            return "collector stopped before the run finished"
        return f"run deadline of {model.run_timeout_seconds:g}s passed"

    def close(self) -> None:
        self._done.set()
