"""The runs in progress and the closes an outage refused: every run ends in a terminal state,
retried until the database answers, or marked ``interrupted`` on a forced shutdown."""

from __future__ import annotations

import logging
import threading

from collector.redaction import redact
from collector.runner.report import _Close, _describe
from collector.store.api import Store
from collector.store.errors import StoreError

log = logging.getLogger("collapse_watch.runner")


class RunBook:
    """The part of ``Runner`` that tracks its runs in progress and retries refused closes."""

    store: Store
    secrets: list[str]
    _active: set[int]
    _unclosed: dict[int, _Close]
    _lock: threading.Lock
    _retrying: threading.Lock

    # -- runs in progress (for a bounded shutdown) -----------------------------------------------
    def _track(self, run_id: int, on: bool) -> None:
        with self._lock:
            (self._active.add if on else self._active.discard)(run_id)

    def active_runs(self) -> list[int]:
        with self._lock:
            return sorted(self._active)

    def finish(self, run_id: int, close: _Close) -> bool:
        """Close ``run_id``; if the database cannot take it now (an outage), keep the close to retry
        (``close_pending``), so the run never stays ``running`` while this process lives on."""
        try:
            self._store_close(run_id, close)
        except StoreError:  # already closed (e.g. reclaimed) or gone: nothing to retry
            log.warning("could not close run %s as %s", run_id, close.status, exc_info=True)
            return False
        except Exception as exc:
            with self._lock:
                self._unclosed[run_id] = close
            log.warning(
                "could not close run %s as %s (%s); it is closed once the database answers again",
                run_id,
                close.status,
                redact(_describe(exc), self.secrets),
            )
            return False
        with self._lock:
            self._unclosed.pop(run_id, None)
        return True

    def close_pending(self) -> int:
        """Retry the closes an outage refused (at every run and every few seconds in ``run``);
        returns how many runs were closed now (0 at once while another thread is retrying)."""
        if not self._retrying.acquire(blocking=False):
            return 0
        try:
            return self._close_pending()
        finally:
            self._retrying.release()

    def _close_pending(self) -> int:
        with self._lock:
            pending = dict(self._unclosed)
        n = 0
        for run_id, close in pending.items():
            try:
                self._store_close(run_id, close)
            except StoreError:  # closed meanwhile by someone else: nothing left to do
                with self._lock:
                    self._unclosed.pop(run_id, None)
                continue
            except Exception:
                continue  # still unreachable: the next call retries
            with self._lock:
                self._unclosed.pop(run_id, None)
            log.info("closed run %s as %s now that the database answers", run_id, close.status)
            n += 1
        return n

    def _store_close(self, run_id: int, close: _Close) -> None:
        self.store.finish_run(
            run_id,
            close.status,  # type: ignore[arg-type]
            close.error,
            close.result,
            embedding_identity=close.identity,
        )

    def pending_closes(self) -> list[int]:
        with self._lock:
            return sorted(self._unclosed)

    def abandon_active(self, reason: str) -> int:
        """Close every run still in progress as ``interrupted`` (the process is about to exit)."""
        self.close_pending()
        n = 0
        for run_id in self.active_runs():
            try:
                self.store.finish_run(run_id, "interrupted", reason)
                n += 1
            except Exception:  # already closed by its thread, or the database is gone
                log.warning("could not mark run %s interrupted", run_id, exc_info=True)
        return n
