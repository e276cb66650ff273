"""The SQL store: what spans tickets (assignment load, the outbox). Temporal history stays the truth."""

from engine.store.db import Store, SchemaTooNew

__all__ = ["Store", "SchemaTooNew"]
