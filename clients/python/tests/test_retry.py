"""Retries, deadlines and the typed error, against a real gRPC server that fails as scripted."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from pathlib import Path

import grpc
import pytest
from conftest import Failure, Running

from segment_sidecar_client import AsyncClient, Client, InvalidEventError, RetryPolicy, SidecarError, Track
from segment_sidecar_client._errors import RETRYABLE_CODES


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


def closed_port() -> int:
    """A loopback port nothing listens on: a sidecar that is not running."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


POLICY_FILE = Path(__file__).resolve().parents[2] / "retry-policy.json"


def test_defaults_are_the_shared_policy() -> None:
    """RetryPolicy's defaults are clients/retry-policy.json's, the one policy of the four clients."""
    config = json.loads(POLICY_FILE.read_text())["methodConfig"][0]["retryPolicy"]
    policy = RetryPolicy()
    assert policy.max_attempts == config["maxAttempts"]
    assert policy.initial_backoff == float(config["initialBackoff"].rstrip("s"))
    assert policy.max_backoff == float(config["maxBackoff"].rstrip("s"))
    assert policy.multiplier == config["backoffMultiplier"]
    assert {code.name for code in RETRYABLE_CODES} == set(config["retryableStatusCodes"])


async def test_no_sidecar_gives_up_after_five_attempts_naming_the_address() -> None:
    """Against a closed port the async client makes the policy's 5 attempts, then gives up.

    It gives up within the sum of the jitter bounds (0.2 + 0.4 + 0.8 + 1.6 = 3.0 s), with an error naming the
    address and SIDECAR_ADDRESS.
    """
    address = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    async with AsyncClient(address, write_key="wk") as client:
        with pytest.raises(SidecarError) as caught:
            await client.track(user_id="u", event="Email Opened")
    took = time.monotonic() - started
    print(f"python async: {caught.value.attempts} attempts, gave up after {took:.2f} s")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert caught.value.attempts == 5
    assert took < 3.0 + 0.5
    assert f"cannot connect to the sidecar at {address}" in str(caught.value)
    assert "SIDECAR_ADDRESS" in str(caught.value)
    assert "gave up after 5 attempts" in str(caught.value)


async def test_sync_client_gives_up_the_same_way() -> None:
    """The blocking client follows the same policy against a closed port: 5 attempts, within 3.0 s."""
    address = f"127.0.0.1:{closed_port()}"

    def run() -> tuple[SidecarError, float]:
        started = time.monotonic()
        with Client(address, write_key="wk") as client, pytest.raises(SidecarError) as caught:
            client.track(user_id="u", event="Email Opened")
        return caught.value, time.monotonic() - started

    error, took = await asyncio.to_thread(run)
    print(f"python sync: {error.attempts} attempts, gave up after {took:.2f} s")
    assert error.attempts == 5
    assert took < 3.0 + 0.5
    assert f"cannot connect to the sidecar at {address}" in str(error)


async def test_cancelled_by_the_server_is_retried(scripted: Running) -> None:
    """CANCELLED that the caller did not cause (gRPC's answer to an overloaded server) is retried, same message id."""
    scripted.sidecar.failures = [Failure(grpc.StatusCode.CANCELLED, "CANCELLED")]
    async with AsyncClient(scripted.address, write_key="wk") as client:
        ack = await client.track(user_id="u", event="Email Opened")
    assert [request.message_id for _, request, _ in scripted.sidecar.seen] == [ack.message_id] * 2


async def test_pushback_header_is_honoured(scripted: Running) -> None:
    """A grpc-retry-pushback-ms trailer delays the retry like a RetryInfo does."""
    scripted.sidecar.failures = [Failure(grpc.StatusCode.UNAVAILABLE, pushback_ms=400)]
    async with AsyncClient(scripted.address, write_key="wk") as client:
        await client.track(user_id="u", event="Email Opened")
    first, second = scripted.sidecar.seen
    assert second[2] - first[2] >= 0.39


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 cannot tell close() from a cancelled task")
async def test_a_call_in_flight_when_its_client_closes_ends_in_a_sidecar_error(scripted: Running) -> None:
    """close() cancels the calls in flight, which grpc.aio raises as a bare CancelledError in a task nobody
    cancelled: the caller gets SidecarError (CANCELLED) instead, and the call is not sent again."""
    gate = scripted.sidecar.batch_gate = asyncio.Event()
    client = AsyncClient(scripted.address, write_key="wk")
    request = client.prepare(Track(user_id="u", event="Email Opened"))
    call = asyncio.ensure_future(client.batch_requests([request]))
    while scripted.sidecar.batches_held < 1:
        await asyncio.sleep(0.01)
    await client.close()
    with pytest.raises(SidecarError) as raised:
        await call
    gate.set()
    assert raised.value.code == grpc.StatusCode.CANCELLED
    assert "closed" in raised.value.message
    assert not call.cancelled()
    assert scripted.sidecar.batches_held == 1


async def test_a_closed_client_does_not_retry(scripted: Running) -> None:
    """A call cut short by close() (CANCELLED, caused by the caller) is raised, not retried."""
    scripted.sidecar.failures = [Failure(grpc.StatusCode.UNAVAILABLE, retry_delay=0.3)]
    client = AsyncClient(scripted.address, write_key="wk")
    call = asyncio.ensure_future(client.track(user_id="u", event="Email Opened"))
    while not scripted.sidecar.seen:
        await asyncio.sleep(0.01)
    await client.close()
    with pytest.raises(SidecarError):
        await call
    assert len(scripted.sidecar.seen) == 1


async def test_unix_socket_from_sidecar_address(scripted_unix: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIDECAR_ADDRESS=unix:/path connects over a unix socket."""
    monkeypatch.setenv("SIDECAR_ADDRESS", scripted_unix.address)
    async with AsyncClient(write_key="wk") as client:
        assert client.address == scripted_unix.address
        ack = await client.track(user_id="u", event="Email Opened", message_id="given-id")
    assert ack.message_id == "given-id"
    assert scripted_unix.sidecar.seen[0][1].message_id == "given-id"
