"""SIDECAR_MAX_CONCURRENT_CALLS: a call takes its place before its request is read, and every way a call can end
gives the place back (a leaked place would refuse every later call)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import grpc
import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar.api.limits import RequestLimits
from sidecar.api.places import Places
from tests.support.harness import Collectors, SidecarUnderTest, free_port, start_sidecar

TRACK = pb.TrackRequest(write_key="wk-limits", user_id="u", event="Report Generated")


async def test_service_calls_take_their_request_as_a_stream_and_health_stays_unary() -> None:
    """A SidecarService call's handler is request-streaming, so the limit runs before gRPC reads the message;
    health and reflection are not counted and keep their unary handler."""

    async def reply(request: object, context: object) -> bytes:
        return b""

    inner = grpc.unary_unary_rpc_method_handler(reply, request_deserializer=bytes, response_serializer=bytes)

    async def continuation(details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        return inner

    limits = RequestLimits(Places(1))
    for method, streaming in (
        ("/segment.sidecar.v1.SidecarService/Batch", True),
        ("/segment.sidecar.v1.SidecarService/Track", True),
        ("/grpc.health.v1.Health/Check", False),
    ):
        details = SimpleNamespace(method=method, invocation_metadata=())
        handler = await limits.intercept_service(continuation, cast(grpc.HandlerCallDetails, details))
        assert handler.request_streaming is streaming, method


async def test_a_method_is_wrapped_once_and_the_wrapper_reused() -> None:
    """Every call of a method gets the handler wrapped for its first call (the wrappers hold no per-call state), and
    a different handler from gRPC for the same method is wrapped afresh."""

    async def reply(request: object, context: object) -> bytes:
        return b""

    handlers = [
        grpc.unary_unary_rpc_method_handler(reply, request_deserializer=bytes, response_serializer=bytes)
        for _ in range(2)
    ]
    given = handlers[0]

    async def continuation(details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        return given

    limits = RequestLimits(Places(1))
    details = cast(grpc.HandlerCallDetails, SimpleNamespace(method="/segment.sidecar.v1.SidecarService/Track"))
    first = await limits.intercept_service(continuation, details)
    assert await limits.intercept_service(continuation, details) is first
    given = handlers[1]
    other = await limits.intercept_service(continuation, details)
    assert other is not first and other.request_streaming


async def until_a_track_is_admitted(running: SidecarUnderTest) -> None:
    """Wait (up to 10 s) until the one place is free again: a Track is answered OK."""
    deadline = time.monotonic() + 10
    while True:
        try:
            await running.stub.Track(TRACK, timeout=5)
            return
        except grpc.aio.AioRpcError as error:
            code = error.code()
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, code
        assert time.monotonic() < deadline, "the place was never given back"
        await asyncio.sleep(0.05)


@pytest.fixture
async def one_place(collectors: Collectors, tmp_path: Path) -> Any:
    """An in-process sidecar with one place, delivering where nothing listens (so a Flush waits)."""
    closed = f"http://127.0.0.1:{free_port()}"
    running = await start_sidecar(
        collectors,
        tmp_path / "spool",
        {"SIDECAR_MAX_CONCURRENT_CALLS": "1", "SIDECAR_ENDPOINT_US": closed, "SIDECAR_ENDPOINT_EU": closed},
    )
    try:
        yield running
    finally:
        await running.close()


async def test_every_way_a_call_ends_gives_its_place_back(one_place: SidecarUnderTest) -> None:
    """With one place: an OK call, bytes that do not decode (INVALID_ARGUMENT), a Flush past its deadline, a Flush
    the caller cancels and a big request whose deadline passes while it arrives each leave the place free."""
    await one_place.stub.Track(TRACK, timeout=5)
    await until_a_track_is_admitted(one_place)

    raw_track = one_place.channel.unary_unary("/segment.sidecar.v1.SidecarService/Track")
    with pytest.raises(grpc.aio.AioRpcError) as undecodable:
        await raw_track(b"\x1a\x02\xff\xfe", timeout=5)  # user_id: invalid UTF-8
    assert undecodable.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await until_a_track_is_admitted(one_place)

    with pytest.raises(grpc.aio.AioRpcError) as late:
        await one_place.stub.Flush(pb.FlushRequest(), timeout=0.5)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await until_a_track_is_admitted(one_place)

    flush = one_place.stub.Flush(pb.FlushRequest(), timeout=30)
    await asyncio.sleep(0)  # let the call start before it is cancelled
    flush.cancel()
    await until_a_track_is_admitted(one_place)

    raw_batch = one_place.channel.unary_unary("/segment.sidecar.v1.SidecarService/Batch")
    with pytest.raises(grpc.aio.AioRpcError):
        await raw_batch(b"\x0a" + b"\x00" * (12 * 2**20), timeout=0.05)
    await until_a_track_is_admitted(one_place)
