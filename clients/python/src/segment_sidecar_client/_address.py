"""Where the sidecar listens: an explicit address, ``SIDECAR_ADDRESS``, or ``127.0.0.1:50051``."""

from __future__ import annotations

import os

DEFAULT_ADDRESS = "127.0.0.1:50051"
ADDRESS_VARIABLE = "SIDECAR_ADDRESS"


def resolve_address(address: str | None = None) -> str:
    """The gRPC target: ``host:port``, or ``unix:/path/to.sock`` for a unix socket (``unix:///path`` also works)."""
    chosen = address or os.environ.get(ADDRESS_VARIABLE) or DEFAULT_ADDRESS
    return chosen.strip()


CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    # The sidecar is local: reconnect quickly after it restarts instead of gRPC's default backoff of up to 120 s,
    # during which every call would fail UNAVAILABLE without trying.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # A Batch may carry up to 16 MiB.
    ("grpc.max_send_message_length", 17 * 2**20),
)
"""Options of the channels the clients create."""
