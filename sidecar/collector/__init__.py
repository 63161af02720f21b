"""A local, Segment-compatible Tracking API server: what tests, the demo and partners' offline QA send events to.

Start one :class:`Collector` per region, point the sidecar's endpoints at their URLs, then read what arrived from
:attr:`Collector.store` and make it misbehave through :attr:`Collector.faults`. ``segment-sidecar collector`` runs a
US and an EU collector from the command line (:func:`sidecar.collector.cli.main`).
"""

from __future__ import annotations

from sidecar.collector.faults import Faults
from sidecar.collector.server import BatchError, BearerVerifier, Collector
from sidecar.collector.store import RESET, ReceivedRequest, Store, max_requests_in_window

__all__ = [
    "RESET",
    "BatchError",
    "BearerVerifier",
    "Collector",
    "Faults",
    "ReceivedRequest",
    "Store",
    "max_requests_in_window",
]
