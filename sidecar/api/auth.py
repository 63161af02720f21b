"""Bearer-token authentication of every RPC (``SIDECAR_AUTH_TOKEN``), as a gRPC server interceptor.

With a token set, a call must carry the metadata ``authorization: Bearer <token>``; otherwise it is answered
``UNAUTHENTICATED`` before its request is read (the SidecarService, health, reflection: every method). The one
exception: the health service answers callers on loopback without a token, so that a probe run beside the sidecar
(Docker's ``HEALTHCHECK``, a Kubernetes ``exec`` probe) needs no secret. The comparison is constant-time
(:func:`hmac.compare_digest` over the whole header value), and the token never appears in a log line or a status
message: a refusal says only what is missing.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import structlog

from sidecar.grpc_handlers import read_after

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
        return read_after(handler, _TokenRefusal(handler_call_details.method))


class _TokenRefusal:
    """The gate of a call without the right token, entered before its request is read: refuse it, unless it asks
    the health service from loopback (a probe beside the sidecar); a refused 16 MiB Batch is never read."""

    def __init__(self, method: str) -> None:
        self._method = method
        self._open_to_loopback = method.startswith(HEALTH_PREFIX)

    @asynccontextmanager
    async def __call__(self, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
        if not (self._open_to_loopback and is_loopback_peer(context.peer())):
            log.warning("call_unauthenticated", method=self._method)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)
        yield
