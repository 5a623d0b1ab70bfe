"""The SQLite results store and its exports."""

from .store import STATUSES, Store, StoreError

__all__ = ["STATUSES", "Store", "StoreError"]
