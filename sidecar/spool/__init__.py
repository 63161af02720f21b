"""The spool: the durable queue between the gRPC edge and delivery, and the acknowledgement boundary."""

from sidecar.spool.backlogs import BacklogListener
from sidecar.spool.memory import MemoryStore
from sidecar.spool.spool import Spool
from sidecar.spool.sqlite import SqliteStore
from sidecar.spool.store import Backlog, DeadLetter, Recovery, Store

__all__ = ["Backlog", "BacklogListener", "DeadLetter", "MemoryStore", "Recovery", "Spool", "SqliteStore", "Store"]
