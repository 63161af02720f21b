"""The spool: the durable queue between the gRPC edge and delivery, and the acknowledgement boundary."""

from sidecar.spool.spool import Spool
from sidecar.spool.store import DeadLetter, MemoryStore, SqliteStore, Store

__all__ = ["DeadLetter", "MemoryStore", "Spool", "SqliteStore", "Store"]
