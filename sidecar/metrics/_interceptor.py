"""The gRPC interceptor that counts events as they arrive, independently of what the servicer reports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc

from sidecar.grpc_handlers import unary_behavior, with_unary_behavior
from sidecar.metrics._families import Metrics, observed_in_call
from sidecar.model import CallType

_SERVICE_PREFIX = "/segment.sidecar.v1.SidecarService/"
_RPC_TYPES = {
    "Track": CallType.TRACK,
    "Identify": CallType.IDENTIFY,
    "Page": CallType.PAGE,
    "Screen": CallType.SCREEN,
    "Group": CallType.GROUP,
    "Alias": CallType.ALIAS,
}


class IntakeInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    """Counts events as they arrive at the gRPC edge, and those refused without the servicer reporting them.

    Installed outermost, so the calls that other interceptors refuse are counted too, under their code."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Wrap the SidecarService's event calls, unary or as the request stream the admission interceptors make of
        them; leave Flush, health and reflection alone."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.response_streaming or not method.startswith(_SERVICE_PREFIX):
            return handler
        rpc = method[len(_SERVICE_PREFIX) :]
        if rpc == "Batch":
            call_type = "unknown"
        elif rpc in _RPC_TYPES:
            call_type = _RPC_TYPES[rpc].value
        else:
            return handler
        metrics = self._metrics
        if handler.unary_unary is not None:
            inner_uu = unary_behavior(handler)

            async def counted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                call = _Call(metrics, rpc, call_type)
                call.arrived(request)
                return await call.run(inner_uu(request, context), context)

            return with_unary_behavior(handler, counted)
        # The admission interceptors hand on a request stream, so that a call they refuse is never read: its request
        # is counted when the servicer pulls it, and a call refused before that counts as one event.
        inner_su = cast(Callable[..., Awaitable[Any]], handler.stream_unary)

        async def counted_stream(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call = _Call(metrics, rpc, call_type)
            return await call.run(inner_su(_Observed(requests, call), context), context)

        return grpc.stream_unary_rpc_method_handler(
            counted_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class _Call:
    """One call's count: the events it carries as its request arrives, and those the servicer did not report."""

    __slots__ = ("_call_type", "_metrics", "_rpc", "events")

    def __init__(self, metrics: Metrics, rpc: str, call_type: str) -> None:
        self._metrics = metrics
        self._rpc = rpc
        self._call_type = call_type
        self.events: int | None = None

    def arrived(self, request: Any) -> int:
        """Count the call's request as received (``None``: the call was refused before its request was read)."""
        # A call refused before its request was decoded (no token, too many in progress, bytes that do not parse)
        # carries no events to count: it counts as one.
        items = getattr(request, "events", None) if self._rpc == "Batch" else None
        events = len(items) if items is not None else 1
        self.events = events
        self._metrics.call_received(self._rpc, events)
        return events

    async def run(self, behavior: Awaitable[Any], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        """Await the call with the servicer's reports collected; count what it did not report, under its code."""
        box = [0]
        token = observed_in_call.set(box)
        code = "ok"
        try:
            return await behavior
        except BaseException:
            code = _code_name(context)
            raise
        finally:
            observed_in_call.reset(token)
            events = self.events if self.events is not None else self.arrived(None)
            unreported = events - box[0]
            if unreported > 0:
                # An OK Batch call with unreported events: items without a call type.
                self._metrics.call_unreported(self._call_type, "invalid_argument" if code == "ok" else code, unreported)


class _Observed:
    """A request stream that counts its message as the servicer pulls it."""

    __slots__ = ("_call", "_requests")

    def __init__(self, requests: Any, call: _Call) -> None:
        self._requests = requests
        self._call = call

    def __aiter__(self) -> _Observed:
        return self

    async def __anext__(self) -> Any:
        request = await anext(aiter(self._requests))
        if self._call.events is None:
            self._call.arrived(request)
        return request


def _code_name(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()  # set by abort(); None when the handler raised without aborting
    return code.name.lower() if isinstance(code, grpc.StatusCode) else "internal"
