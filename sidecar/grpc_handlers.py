"""Rewrapping a gRPC method handler, the one step every server interceptor here shares: take the unary-unary
behaviour a later interceptor or the servicer produced, wrap it, and hand on a handler with the same
(de)serializers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc

UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
"""A unary-unary method's behaviour under grpc.aio: request and context in, the reply out."""


def unary_behavior(handler: grpc.RpcMethodHandler[Any, Any]) -> UnaryBehavior:
    """The handler's unary-unary behaviour (grpc-stubs type it as synchronous; under grpc.aio it is a coroutine)."""
    return cast(UnaryBehavior, handler.unary_unary)


def with_unary_behavior(
    handler: grpc.RpcMethodHandler[Any, Any],
    behavior: UnaryBehavior,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary-unary handler running ``behavior`` with ``handler``'s serializers (its request deserializer unless
    another is given)."""
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
