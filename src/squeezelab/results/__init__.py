"""The SQLite results store and its exports."""

from .records import Fields, RunRecord, RunScore
from .store import STATUSES, Store, StoreError

__all__ = ["STATUSES", "Fields", "RunRecord", "RunScore", "Store", "StoreError"]
