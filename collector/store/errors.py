"""The store's one error type (its own module so the Store's mixins can raise it too)."""

from __future__ import annotations


class StoreError(RuntimeError):
    """A write the store refused; the message names what and why."""


class VersionExists(ValueError):
    """A version the model already has a completed run of was to be recorded again: a version is one
    set of outputs, never silently mixed with or replaced by another (``History.record`` and
    ``score --store`` both refuse it)."""

    def __init__(self, model: str, version: str, run_id: int, free: str) -> None:
        self.model, self.version, self.run_id, self.free = model, version, run_id, free
        super().__init__(
            f"{model}@{version} is already recorded in the history (run {run_id}); record these "
            f"outputs under another version label (e.g. {free!r}) or another model name"
        )


def first_line(exc: BaseException) -> str:
    """``Type: first line`` of a database error (the driver's, under SQLAlchemy's wrapper), for one
    log line or a run's reason without the SQL and the traceback."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else ''}".rstrip(": ")
