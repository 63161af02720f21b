"""The handler rewrapping every server interceptor shares: a unary request read from the one-message stream that
admission makes of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import pytest

from sidecar.grpc_handlers import single_request


class Context:
    """What single_request uses of a servicer context: abort, which raises as gRPC's does."""

    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        """Record the status and end the call."""
        self.aborted = (code, details)
        raise RuntimeError("aborted")


async def test_the_request_stream_is_closed_once_its_message_is_read() -> None:
    """The stream (an async generator, as gRPC's is) is closed before the message is handed on, not left to the
    event loop's finaliser, which would run a task of its own for every call."""
    events: list[str] = []

    async def stream() -> AsyncIterator[str]:
        try:
            yield "the request"
            events.append("read past the message")
        finally:
            events.append("closed")

    request = await single_request(stream(), cast(Any, Context()))
    assert request == "the request"
    assert events == ["closed"]


async def test_a_stream_without_a_message_is_refused_and_closed() -> None:
    """No message: INVALID_ARGUMENT, and closing the stream that has already ended (it closed itself) neither raises
    nor hides the abort."""
    events: list[str] = []

    async def empty() -> AsyncIterator[str]:
        try:
            return
            yield  # an async generator
        finally:
            events.append("closed")

    context = Context()
    with pytest.raises(RuntimeError, match="aborted"):
        await single_request(empty(), cast(Any, context))
    assert context.aborted == (grpc.StatusCode.INVALID_ARGUMENT, "the call carried no request message")
    assert events == ["closed"]
