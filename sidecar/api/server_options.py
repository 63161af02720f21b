"""The gRPC server's own options: what it answers under overload and what it buffers before a call is admitted.

The composition root passes :func:`server_arguments` to ``grpc.aio.server``. Each option below exists because a real
process showed what happens without it:

=====================================  ===============================================================================
Option                                 Why
=====================================  ===============================================================================
``grpc.server.max_pending_requests``   gRPC core keeps at most 1,000 calls waiting for the server to take them and
(and its ``_hard_limit``)              answers the oldest past that ``CANCELLED``, a code no client retries: 2,000
                                       concurrent calls on one channel drew 99 of them. Calls are taken as fast as the
                                       event loop runs, so the queue is allowed to hold a whole burst.
``maximum_concurrent_rpcs``            gRPC's own admission: past it a call is answered ``RESOURCE_EXHAUSTED`` before
(an argument, not an option)           its request is read. The call limit of :mod:`sidecar.api.limits` counts a call
                                       only once its whole request arrived, so this bounds what the server buffers for
                                       calls it has not admitted. It is the call limit, plus the limit of open
                                       outcome watches (``SIDECAR_MAX_OUTCOME_WATCHES``, counted by the servicer),
                                       plus :data:`PROBE_HEADROOM`: watches at their limit leave every call its
                                       place, and health checks still answer while the service is at its limits.
``grpc.max_metadata_size`` and         Request headers above :data:`MAX_METADATA_BYTES` are refused
``grpc.absolute_max_metadata_size``    ``RESOURCE_EXHAUSTED`` ("received metadata size exceeds ... limit") by gRPC
                                       before any handler runs. Both are set: between a lower "soft" and the "hard"
                                       limit gRPC refuses at random (3 of 10 calls at 17 KiB), which no caller can
                                       plan for.
``grpc.max_receive_message_length``    A Batch of 16 MiB plus room for its framing (:data:`MAX_MESSAGE_BYTES`).
``grpc.http2.bdp_probe`` = 0           gRPC grows every stream's HTTP/2 receive window by its estimate of the link's
                                       bandwidth-delay product, megabytes on loopback: a caller could then push that
                                       much of each call before the server has admitted it (96 refused 15.8 MiB
                                       Batches held 460 MiB). Without the probe a stream not yet admitted is granted
                                       gRPC's initial window, :data:`STREAM_WINDOW_BYTES`; a call the server reads
                                       still gets a window sized for its message, so admitted calls lose no speed.
``grpc.so_reuseport`` = 0              A second sidecar on the same port fails to start instead of sharing it.
=====================================  ===============================================================================

Not set: ``grpc.max_concurrent_streams``. It makes gRPC refuse every stream past it with ``RST_STREAM`` before the
client has read the setting (``UNAVAILABLE``): of 5,000 concurrent Tracks on one channel, 3,137 were refused at a
value of 256, against 100 refused by the call limit without it. What a stream costs before it is admitted is bounded
per stream instead (:data:`STREAM_WINDOW_BYTES`), and such streams do not wait: the token check and the call limit
(:func:`sidecar.grpc_handlers.read_after`) answer each as soon as gRPC hands it over, before reading its request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidecar.api.limits import MAX_MESSAGE_BYTES

MAX_METADATA_BYTES = 16 * 2**10
"""Request headers (metadata) a call may carry, in bytes, as HTTP/2 counts them (name + value + 32 per entry,
``:path`` and ``:authority`` included).

gRPC's default is a soft 8 KiB (refused at random above it) and a hard 16 KiB. The sidecar reads only
``authorization``; the rest is whatever a caller's proxies and tracing add, so one deterministic bound of 16 KiB is
set on purpose and documented, rather than left to surprise."""

STREAM_WINDOW_BYTES = 64 * 2**10
"""What a caller may send on one stream before the server reads from it: HTTP/2's initial window (gRPC's default,
kept by turning the BDP probe off). The bound on what a call not yet admitted, or refused, costs."""

PROBE_HEADROOM = 16
"""Calls gRPC admits beyond ``SIDECAR_MAX_CONCURRENT_CALLS``: room for health checks and reflection, which the call
limit does not count, while the service calls are at their limit."""

MAX_PENDING_CALLS = 65_536
"""Calls gRPC core may hold before the server takes them (see the table above)."""


@dataclass(frozen=True)
class ServerArguments:
    """Keyword arguments for ``grpc.aio.server`` besides the interceptors."""

    options: tuple[tuple[str, Any], ...]
    maximum_concurrent_rpcs: int

    def as_kwargs(self) -> dict[str, Any]:
        """The arguments as ``grpc.aio.server`` takes them."""
        return {"options": list(self.options), "maximum_concurrent_rpcs": self.maximum_concurrent_rpcs}


def server_arguments(max_concurrent_calls: int, max_outcome_watches: int) -> ServerArguments:
    """The server's options for a call limit of ``max_concurrent_calls`` (``SIDECAR_MAX_CONCURRENT_CALLS``) and
    ``max_outcome_watches`` open watches (``SIDECAR_MAX_OUTCOME_WATCHES``)."""
    return ServerArguments(
        options=(
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
            ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
            ("grpc.http2.bdp_probe", 0),
            ("grpc.so_reuseport", 0),
        ),
        maximum_concurrent_rpcs=max_concurrent_calls + max_outcome_watches + PROBE_HEADROOM,
    )
