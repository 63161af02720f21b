"""Prometheus families of the two tiers, in a collector of their own registered beside the sidecar's metrics.

=============================================  ==================  =============================================
metric                                         labels              meaning
=============================================  ==================  =============================================
``sidecar_forwarded_events_total``             ``gateway``         events a gateway accepted from this edge
``sidecar_forwarded_batches_total``            ``gateway``         Batch calls a gateway answered OK
``sidecar_forward_failures_total``             ``gateway, code``   Batch calls that failed (gRPC code, lower case)
``sidecar_forward_gateways``                   ``gateway``         1 for each gateway in the list in use
``sidecar_events_received_from_edges_total``   (none)              on a gateway: events accepted in edges' calls
=============================================  ==================  =============================================

Counts are plain integers turned into families at scrape time, like :mod:`sidecar.metrics`. Gateways are labelled by
address (a few per fleet), never by write key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import grpc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from sidecar.grpc_handlers import unary_behavior, with_unary_behavior

EDGE_METADATA = "x-segment-sidecar-edge"
"""Metadata an edge adds to its calls, so that a gateway can count what it receives from edges."""
_BATCH_METHOD = "/segment.sidecar.v1.SidecarService/Batch"


class ForwardMetrics:
    """The counters of both tiers; a ``prometheus_client`` collector (register it on the sidecar's registry)."""

    def __init__(self) -> None:
        self._events: dict[str, int] = {}
        self._batches: dict[str, int] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self._gateways: tuple[str, ...] = ()
        self.received_from_edges = 0

    def forwarded(self, gateway: str, events: int) -> None:
        """A gateway answered OK to a Batch call and accepted ``events`` of its events."""
        self._events[gateway] = self._events.get(gateway, 0) + events
        self._batches[gateway] = self._batches.get(gateway, 0) + 1

    def failed(self, gateway: str, code: str) -> None:
        """A Batch call to a gateway failed with ``code``."""
        key = (gateway, code)
        self._failures[key] = self._failures.get(key, 0) + 1

    def gateways_in_use(self, gateways: Sequence[str]) -> None:
        """The gateway list changed."""
        self._gateways = tuple(gateways)

    def describe(self) -> list[Metric]:
        """Nothing up front: the families are built at each scrape."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The families, from the plain counts."""
        events = CounterMetricFamily(
            "sidecar_forwarded_events", "Events a gateway accepted from this edge.", labels=["gateway"]
        )
        for gateway, count in sorted(self._events.items()):
            events.add_metric([gateway], count)
        yield events
        batches = CounterMetricFamily(
            "sidecar_forwarded_batches", "Batch calls a gateway answered OK, by gateway.", labels=["gateway"]
        )
        for gateway, count in sorted(self._batches.items()):
            batches.add_metric([gateway], count)
        yield batches
        failures = CounterMetricFamily(
            "sidecar_forward_failures", "Failed Batch calls to a gateway, by gRPC code.", labels=["gateway", "code"]
        )
        for (gateway, code), count in sorted(self._failures.items()):
            failures.add_metric([gateway, code], count)
        yield failures
        in_use = GaugeMetricFamily("sidecar_forward_gateways", "1 per gateway in the list in use.", labels=["gateway"])
        for gateway in self._gateways:
            in_use.add_metric([gateway], 1)
        yield in_use
        yield CounterMetricFamily(
            "sidecar_events_received_from_edges",
            "On a gateway: events accepted in Batch calls made by edge sidecars.",
            value=self.received_from_edges,
        )


class EdgeIntakeInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    """On a gateway: counts the events accepted in Batch calls that carry the edge metadata."""

    def __init__(self, metrics: ForwardMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Wrap Batch calls made by edges; leave every other call alone."""
        handler = await continuation(handler_call_details)
        if (
            handler is None
            or handler.unary_unary is None
            or handler_call_details.method != _BATCH_METHOD
            or not any(key == EDGE_METADATA for key, _ in handler_call_details.invocation_metadata or ())
        ):
            return handler
        inner = unary_behavior(handler)
        metrics = self._metrics

        async def counted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            reply = await inner(request, context)
            metrics.received_from_edges += int(getattr(reply, "accepted", 0))
            return reply

        return with_unary_behavior(handler, counted)
