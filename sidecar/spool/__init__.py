"""The spool: the durable queue between the gRPC edge and delivery, and the acknowledgement boundary."""

from sidecar.spool.downstream import SpoolListener
from sidecar.spool.memory import MemoryStore
from sidecar.spool.spool import Spool
from sidecar.spool.sqlite import SqliteStore
from sidecar.spool.store import DeadLetter, Recovery, Store

__all__ = ["DeadLetter", "MemoryStore", "Recovery", "Spool", "SpoolListener", "SqliteStore", "Store"]
