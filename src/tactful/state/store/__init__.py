"""Remember, durable: store backends behind one interface."""

from tactful.state.store.base import DuplicateEventError, QuarantineItem, Store, StoreStats
from tactful.state.store.sqlite import SQLiteStore

__all__ = ["DuplicateEventError", "QuarantineItem", "SQLiteStore", "Store", "StoreStats"]
