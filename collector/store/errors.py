"""The store's one error type (its own module so the Store's mixins can raise it too)."""

from __future__ import annotations


class StoreError(RuntimeError):
    """A write the store refused; the message names what and why."""


def first_line(exc: BaseException) -> str:
    """``Type: first line`` of a database error (the driver's, under SQLAlchemy's wrapper), for one
    log line or a run's reason without the SQL and the traceback."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else ''}".rstrip(": ")
