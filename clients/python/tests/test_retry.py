"""Retries, deadlines and the typed error, against a real gRPC server that fails as scripted."""

from __future__ import annotations

import asyncio
import socket
import time

import grpc
import pytest
from conftest import Failure, Running

from segment_sidecar_client import AsyncClient, Client, InvalidEventError, RetryPolicy, SidecarError, Track


async def test_retries_unavailable_then_resource_exhausted_with_the_same_message_id(scripted: Running) -> None:
    """UNAVAILABLE then RESOURCE_EXHAUSTED (RetryInfo 300 ms) are retried; every attempt carries one message id."""
    scripted.sidecar.failures = [
        Failure(grpc.StatusCode.UNAVAILABLE),
        Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "spool full", retry_delay=0.3),
    ]
    async with AsyncClient(scripted.address, write_key="wk") as client:
        ack = await client.track(user_id="u1", event="Email Opened", properties={"n": 1})
    attempts = scripted.sidecar.seen
    assert [method for method, _, _ in attempts] == ["Track"] * 3
    ids = {request.message_id for _, request, _ in attempts}
    assert ids == {ack.message_id}
    assert len(ack.message_id) == 36  # a uuid4 made by the client
    assert attempts[2][2] - attempts[1][2] >= 0.29, "the RetryInfo delay was not honoured"


async def test_sync_client_retries_a_whole_batch_with_the_same_ids(scripted: Running) -> None:
    """The blocking client retries a Batch that failed as a whole, resending the same message ids."""
    scripted.sidecar.failures = [Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=0.05)]

    def run() -> list[str]:
        with Client(scripted.address, write_key="wk") as client:
            results = client.batch([Track(user_id="u", event="A"), Track(user_id="u", event="Bad Event")])
        assert [r.ok for r in results] == [True, False]
        assert results[1].rejection is not None
        assert results[1].rejection.field == "event"
        return [r.message_id for r in results]

    ids = await asyncio.to_thread(run)
    sent = [[getattr(e, e.WhichOneof("event")).message_id for e in req.events] for _, req, _ in scripted.sidecar.seen]
    assert sent == [ids, ids]


async def test_invalid_argument_raises_typed_error_without_retry(scripted: Running) -> None:
    """INVALID_ARGUMENT is raised at once as InvalidEventError carrying the BadRequest field violations."""
    scripted.sidecar.failures = [
        Failure(grpc.StatusCode.INVALID_ARGUMENT, "user_id: required", violations=(("user_id", "required"),))
    ]
    async with AsyncClient(scripted.address, write_key="wk") as client:
        with pytest.raises(InvalidEventError) as caught:
            await client.track(event="Email Opened", message_id="m-1")
    assert caught.value.field == "user_id"
    assert caught.value.violations[0].description == "required"
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(scripted.sidecar.seen) == 1


async def test_sync_invalid_argument_is_typed(scripted: Running) -> None:
    """The blocking client raises the same typed error for a rejected event, after one attempt."""

    def run() -> InvalidEventError:
        with Client(scripted.address, write_key="wk") as client, pytest.raises(InvalidEventError) as caught:
            client.track(user_id="u", event="Bad Event")
        return caught.value

    error = await asyncio.to_thread(run)
    assert error.field == "event"
    assert len(scripted.sidecar.seen) == 1


async def test_retries_stop_at_the_deadline(scripted: Running) -> None:
    """A RetryInfo longer than the call's deadline ends the call with the retryable error instead of waiting."""
    scripted.sidecar.failures = [Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=5.0)] * 3
    started = time.monotonic()
    async with AsyncClient(scripted.address, write_key="wk", timeout=1.0) as client:
        with pytest.raises(SidecarError) as caught:
            await client.track(user_id="u", event="Email Opened")
    assert time.monotonic() - started < 1.0
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.retryable
    assert caught.value.retry_after == pytest.approx(5.0)
    assert len(scripted.sidecar.seen) == 1


async def test_attempts_are_bounded(scripted: Running) -> None:
    """With max_attempts=3 a sidecar that keeps answering UNAVAILABLE sees exactly three attempts."""
    scripted.sidecar.failures = [Failure(grpc.StatusCode.UNAVAILABLE)] * 5
    async with AsyncClient(scripted.address, write_key="wk", retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(SidecarError):
            await client.identify(user_id="u", traits={"plan": "pro"})
    assert len(scripted.sidecar.seen) == 3


async def test_other_codes_are_not_retried(scripted: Running) -> None:
    """FAILED_PRECONDITION (a key without OAuth credentials) is raised after one attempt."""
    scripted.sidecar.failures = [Failure(grpc.StatusCode.FAILED_PRECONDITION, "needs OAuth")]
    async with AsyncClient(scripted.address, write_key="wk") as client:
        with pytest.raises(SidecarError) as caught:
            await client.track(user_id="u", event="Email Opened")
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert not caught.value.retryable
    assert len(scripted.sidecar.seen) == 1


async def test_no_server_is_unavailable_within_the_deadline() -> None:
    """With nothing listening, the call retries UNAVAILABLE and gives up within its deadline."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    async with AsyncClient(f"127.0.0.1:{port}", write_key="wk", timeout=0.5) as client:
        with pytest.raises(SidecarError) as caught:
            await client.track(user_id="u", event="Email Opened")
    assert caught.value.code in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
    assert time.monotonic() - started < 2.0


async def test_unix_socket_from_sidecar_address(scripted_unix: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIDECAR_ADDRESS=unix:/path connects over a unix socket."""
    monkeypatch.setenv("SIDECAR_ADDRESS", scripted_unix.address)
    async with AsyncClient(write_key="wk") as client:
        assert client.address == scripted_unix.address
        ack = await client.track(user_id="u", event="Email Opened", message_id="given-id")
    assert ack.message_id == "given-id"
    assert scripted_unix.sidecar.seen[0][1].message_id == "given-id"
