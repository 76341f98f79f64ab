"""SQL history: models, the one storage API (`Store`), views and migrations (see docs/sql.md)."""

from collector.store.api import SampleRecord, Store, StoreError

__all__ = ["SampleRecord", "Store", "StoreError"]
