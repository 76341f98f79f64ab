"""The store's one error type (its own module so the Store's mixins can raise it too)."""

from __future__ import annotations


class StoreError(RuntimeError):
    """A write the store refused; the message names what and why."""
