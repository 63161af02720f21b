"""Bearer-token authentication of every RPC (``SIDECAR_AUTH_TOKEN``), as a gRPC server interceptor.

With a token set, a call must carry the metadata ``authorization: Bearer <token>``; otherwise it is answered
``UNAUTHENTICATED`` before any handler runs (the SidecarService, health, reflection: every method). The one exception:
the health service answers callers on loopback without a token, so that a probe run beside the sidecar (Docker's
``HEALTHCHECK``, a Kubernetes ``exec`` probe) needs no secret. The comparison is constant-time
(:func:`hmac.compare_digest` over the whole header value), and the token never appears in a log line or a status
message: a refusal says only what is missing.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc
import structlog

from sidecar.grpc_handlers import unary_behavior, with_unary_behavior

log = structlog.get_logger("sidecar.api")

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFUSAL = "this sidecar requires `authorization: Bearer <token>` metadata (SIDECAR_AUTH_TOKEN); missing or wrong"


def is_loopback_peer(peer: str) -> bool:
    """Whether a gRPC peer string (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``, ``unix:...``) is this machine."""
    return peer.startswith(("ipv4:127.", "ipv6:[::1]", "unix:", "ipv6:[::ffff:127."))


class TokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    """Refuses every call without the right bearer token; see the module docstring."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def authenticated(self, metadata: Any) -> bool:
        """Whether the call's metadata carries the expected ``authorization`` value (constant-time)."""
        for key, value in metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(given, self._expected)
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Pass an authenticated call on; answer any other UNAUTHENTICATED (health: unless from loopback)."""
        handler = await continuation(handler_call_details)
        if handler is None or self.authenticated(handler_call_details.invocation_metadata):
            return handler
        method = handler_call_details.method
        guarded: grpc.RpcMethodHandler[Any, Any] = _guarded(
            handler, open_to_loopback=method.startswith(HEALTH_PREFIX), method=method
        )
        return guarded


def _guarded(handler: grpc.RpcMethodHandler[Any, Any], open_to_loopback: bool, method: str) -> Any:
    """The same kind of handler, refusing the call unless ``open_to_loopback`` and the peer is on loopback."""

    async def refuse(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
        if open_to_loopback and is_loopback_peer(context.peer()):
            return False
        log.warning("call_unauthenticated", method=method)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)
        return True  # pragma: no cover - abort raises

    # A call that will be refused whatever it carries is not decoded: without the token, a 16 MiB request costs no
    # parse. Health from loopback is served, so it is.
    decode = handler.request_deserializer if open_to_loopback else _unread
    options = {"request_deserializer": decode, "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None:
        inner_uu = unary_behavior(handler)

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await refuse(context)
            return await inner_uu(request, context)

        return with_unary_behavior(handler, unary_unary, request_deserializer=decode)
    if handler.unary_stream is not None:
        inner_us = cast(Callable[..., Any], handler.unary_stream)

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            await refuse(context)
            await _relay(inner_us(request, context), context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, **options)
    if handler.stream_unary is not None:
        inner_su = cast(Callable[..., Awaitable[Any]], handler.stream_unary)

        async def stream_unary(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await refuse(context)
            return await inner_su(requests, context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, **options)
    inner_ss = cast(Callable[..., Any], handler.stream_stream)

    async def stream_stream(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await refuse(context)
        await _relay(inner_ss(requests, context), context)

    return grpc.stream_stream_rpc_method_handler(stream_stream, **options)


def _unread(raw: bytes) -> None:
    return None


async def _relay(produced: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Send a streaming handler's replies with ``context.write`` (one style: gRPC refuses a mix of generator and
    ``write``), whether the handler is an async generator or a coroutine that writes them itself."""
    if hasattr(produced, "__aiter__"):
        async for reply in produced:
            await context.write(reply)
    else:
        await produced
