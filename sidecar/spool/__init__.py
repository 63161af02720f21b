"""The spool: the durable queue between the gRPC edge and delivery, and the acknowledgement boundary."""

from sidecar.spool.spool import BacklogListener, Spool
from sidecar.spool.store import Backlog, DeadLetter, MemoryStore, Recovery, SqliteStore, Store

__all__ = ["Backlog", "BacklogListener", "DeadLetter", "MemoryStore", "Recovery", "Spool", "SqliteStore", "Store"]
