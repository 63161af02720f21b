"""The gRPC interceptor that counts events as they arrive, independently of what the servicer reports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

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
        """Wrap the SidecarService's event calls; leave Flush, health and reflection alone."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or not method.startswith(_SERVICE_PREFIX):
            return handler
        rpc = method[len(_SERVICE_PREFIX) :]
        if rpc == "Batch":
            call_type = "unknown"
        elif rpc in _RPC_TYPES:
            call_type = _RPC_TYPES[rpc].value
        else:
            return handler
        inner = unary_behavior(handler)
        metrics = self._metrics

        async def counted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            # A call refused before its request was decoded (too many in progress, bytes that do not parse) carries
            # no events to count: it counts as one.
            items = getattr(request, "events", None) if rpc == "Batch" else None
            events = len(items) if items is not None else 1
            metrics.call_received(rpc, events)
            box = [0]
            token = observed_in_call.set(box)
            code = "ok"
            try:
                return await inner(request, context)
            except BaseException:
                code = _code_name(context)
                raise
            finally:
                observed_in_call.reset(token)
                unreported = events - box[0]
                if unreported > 0:
                    # An OK Batch call with unreported events: items without a call type.
                    metrics.call_unreported(call_type, "invalid_argument" if code == "ok" else code, unreported)

        return with_unary_behavior(handler, counted)


def _code_name(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()  # set by abort(); None when the handler raised without aborting
    return code.name.lower() if isinstance(code, grpc.StatusCode) else "internal"
