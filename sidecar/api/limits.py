"""The gRPC server's own limits: message size, calls in progress, and requests that do not decode.

Installed on the server by the composition root (``RequestLimits()``, and the receive limit option); each refusal is a
documented status, never ``UNKNOWN`` or ``INTERNAL``:

==========================================  ==========================================================================
Request                                     Answer
==========================================  ==========================================================================
over :data:`MAX_MESSAGE_BYTES`              ``RESOURCE_EXHAUSTED`` from gRPC itself, before anything is read into
                                            memory (split the Batch; retrying it unchanged fails again)
``SIDECAR_MAX_CONCURRENT_CALLS`` at once    ``RESOURCE_EXHAUSTED`` with ``RetryInfo`` (:data:`BUSY_RETRY_AFTER`) and a
                                            ``QuotaFailure`` on ``concurrent_calls``, and the same delay as gRPC's
                                            ``grpc-retry-pushback-ms`` trailer, which a generic client's service
                                            config ``retryPolicy`` honours; decided before the request is read
bytes that do not decode (invalid UTF-8 in  ``INVALID_ARGUMENT`` with a ``BadRequest`` on ``request``, instead of the
a string field, nesting past protobuf's     ``UNKNOWN`` grpc answers when its deserializer raises
limit, truncated fields)
==========================================  ==========================================================================

Health and reflection are not counted against the call limit, so probes still answer while the sidecar is busy. The
places are one pool (:class:`~sidecar.api.places.Places`) that the HTTP intake (``SIDECAR_HTTP_LISTEN``) takes from as
well: with 16 MiB per call, the limit bounds what requests in progress hold in memory only if both edges count
against the same places. Calls are short (a spool commit); a Flush holds its place while it waits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import grpc
import structlog

from sidecar.api.places import Places
from sidecar.api.servicer import MAX_BATCH_BYTES
from sidecar.api.status import to_status
from sidecar.errors import InvalidEvent, ServerBusy
from sidecar.grpc_handlers import UnaryBehavior, read_after, unary_behavior, with_unary_behavior

log = structlog.get_logger("sidecar.api")

MAX_MESSAGE_BYTES = MAX_BATCH_BYTES + 2**20
"""The server's receive limit (set in the composition root): a Batch of 16 MiB plus room for its framing."""

BUSY_RETRY_AFTER = 0.1
"""The retry delay (seconds) sent with a refusal for too many calls in progress."""

_SERVICE_PREFIX = "/segment.sidecar.v1.SidecarService/"

PUSHBACK_KEY = "grpc-retry-pushback-ms"
"""gRPC's own trailer for a server's retry delay, in milliseconds (gRFC A6)."""


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def with_pushback(status: grpc.Status, delay: float) -> grpc.Status:
    """``status`` with a ``grpc-retry-pushback-ms`` trailer asking for ``delay`` seconds."""
    trailers = (*status.trailing_metadata, (PUSHBACK_KEY, str(round(delay * 1000))))
    return _Status(status.code, status.details, trailers)


class _Undecodable:
    """What the guarded deserializer hands on instead of raising: the parser's complaint."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class RequestLimits(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    """Refuses undecodable requests with INVALID_ARGUMENT and calls beyond the concurrency limit with RetryInfo."""

    def __init__(self, places: Places) -> None:
        """``places`` are the ``SIDECAR_MAX_CONCURRENT_CALLS`` places, which the HTTP intake takes from as well."""
        self._places = places
        # Per method: the handler gRPC gave and the wrapped one made of it. Both wrappers hold no per-call state, so
        # a call reuses them instead of building four closures and two handlers each time.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Wrap unary handlers: decoding guarded; SidecarService calls admitted (counted) before their request is
        read, so a call past the limit costs one HTTP/2 window, not its 16 MiB."""
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        guarded = with_unary_behavior(
            handler,
            _refuse_undecodable(unary_behavior(handler)),
            request_deserializer=_guard_deserializer(handler.request_deserializer),
        )
        wrapped = read_after(guarded, self._place) if method.startswith(_SERVICE_PREFIX) else guarded
        self._wrapped[method] = (handler, wrapped)  # one entry per method gRPC has a handler for
        return wrapped

    def _place(self, context: grpc.aio.ServicerContext[Any, Any]) -> _Place:
        """One of the ``SIDECAR_MAX_CONCURRENT_CALLS`` places, taken before the request is read and held to the
        call's end; past the limit the call is refused RESOURCE_EXHAUSTED with RetryInfo."""
        return _Place(self, context)

    async def _refuse_busy(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        limit = self._places.limit
        log.warning("call_refused", code="RESOURCE_EXHAUSTED", reason="too many calls in progress", limit=limit)
        error = ServerBusy(
            f"the sidecar has {limit} calls in progress (gRPC and HTTP together), its limit "
            f"(SIDECAR_MAX_CONCURRENT_CALLS); retry after {BUSY_RETRY_AFTER} s",
            retry_after=BUSY_RETRY_AFTER,
        )
        await cast(Any, context).abort_with_status(with_pushback(to_status(error), BUSY_RETRY_AFTER))


class _Place:
    """The admission gate of one call (:meth:`RequestLimits._place`): a plain async context manager, since a
    generator-based one costs a generator and its frames per call."""

    __slots__ = ("_context", "_limits")

    def __init__(self, limits: RequestLimits, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self._limits = limits
        self._context = context

    async def __aenter__(self) -> None:
        limits = self._limits
        if not limits._places.take():  # the gate is part of RequestLimits
            await limits._refuse_busy(self._context)  # aborts, so __aexit__ never gives back a place not taken

    async def __aexit__(self, *exc_info: object) -> None:
        self._limits._places.give_back()


def _refuse_undecodable(behavior: UnaryBehavior) -> UnaryBehavior:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, _Undecodable):
            error = InvalidEvent.single("request", f"could not be decoded: {request.reason}")
            await cast(Any, context).abort_with_status(to_status(error))
        return await behavior(request, context)

    return guarded


def _guard_deserializer(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def guarded(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception as exc:  # noqa: BLE001 - any parser failure is the caller's bytes, answered INVALID_ARGUMENT
            return _Undecodable(_reason(exc))

    return guarded


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "utf-8" in text.lower() or isinstance(exc, UnicodeDecodeError):
        return "a string field is not valid UTF-8"
    return text[:200]
