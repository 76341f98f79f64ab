"""SQL history: models, the one storage API (`Store`), views and migrations (see docs/sql.md).

``Store``, ``SampleRecord`` and ``StoreError`` are loaded on first use (PEP 562): a module that
needs only the tables (the local vector cache of `compare`) does not import the whole API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.store.api import SampleRecord, Store, StoreError

__all__ = ["SampleRecord", "Store", "StoreError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from collector.store import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
