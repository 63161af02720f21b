"""The collector's injected faults, set in-process and over HTTP, seen by a real client over real sockets."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import aiohttp
import pytest

from sidecar.collector import RESET, Collector, Faults

KEY = "wk_test_faults_1"


def headers(key: str = KEY) -> dict[str, str]:
    """Basic auth and JSON content type for a write key."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def batch(*message_ids: str) -> dict[str, Any]:
    """A valid batch of track events with these message ids."""
    return {"batch": [{"type": "track", "userId": "u", "event": "E", "messageId": m} for m in message_ids]}


async def send(
    session: aiohttp.ClientSession, collector: Collector, body: dict[str, Any], key: str = KEY
) -> aiohttp.ClientResponse:
    """POST a batch and return the (read) response."""
    async with session.post(collector.url + "/v1/batch", json=body, headers=headers(key)) as response:
        await response.read()
        return response


async def test_error_rate_is_roughly_honoured_and_seeded(collector: Collector, session: aiohttp.ClientSession) -> None:
    """With error_rate 0.3 about 30% of 300 requests get 500 or 503; the same seed gives the same sequence."""
    collector.faults.error_rate = 0.3
    statuses = [(await send(session, collector, batch(f"m{i}"))).status for i in range(300)]
    failed = [s for s in statuses if s != 200]
    assert set(failed) == {500, 503}
    assert 60 <= len(failed) <= 120
    assert len(collector.store.events()) == statuses.count(200)
    assert all(r.fault == "error" for r in collector.store.requests if r.status != 200)

    collector.faults.reseed(0)
    again = [(await send(session, collector, batch(f"m{i}"))).status for i in range(300)]
    assert again == statuses


async def test_throttle_next_answers_429_with_retry_after(collector: Collector, session: aiohttp.ClientSession) -> None:
    """``throttle_next=2`` answers the next two requests 429 with Retry-After and X-RateLimit-Reset, then 200."""
    collector.faults.throttle_next = 2
    collector.faults.retry_after = 3
    first = await send(session, collector, batch("a"))
    second = await send(session, collector, batch("b"))
    third = await send(session, collector, batch("c"))
    assert [first.status, second.status, third.status] == [429, 429, 200]
    assert first.headers["Retry-After"] == "3"
    assert first.headers["X-RateLimit-Reset"] == "3"
    assert collector.store.message_ids() == ["c"]
    assert collector.faults.throttle_next == 0


async def test_reset_gives_a_client_connection_error(collector: Collector, session: aiohttp.ClientSession) -> None:
    """A reset connection is a client-side connection error, recorded with status 0 and the batch it carried."""
    collector.faults.reset_rate = 1.0
    with pytest.raises(aiohttp.ClientConnectionError):
        await send(session, collector, batch("lost"))
    received = collector.store.requests[0]
    assert (received.status, received.fault) == (RESET, "reset")
    assert [e["messageId"] for e in received.events] == ["lost"]
    assert collector.store.events() == []
    collector.faults.reset_rate = 0.0
    assert (await send(session, collector, batch("after"))).status == 200


async def test_delay_slows_the_answer(collector: Collector, session: aiohttp.ClientSession) -> None:
    """``delay`` holds each answer that long; ``started_at`` is when the request began, not when it ended."""
    collector.faults.delay = 0.4
    started = time.monotonic()
    response = await send(session, collector, batch("slow"))
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert 0.4 <= elapsed < 3
    assert collector.store.requests[0].started_at < started + 0.2


async def test_stop_cuts_a_slow_answer_short(collector: Collector, session: aiohttp.ClientSession) -> None:
    """A collector stopping while a request waits out a long delay stops within about a second."""
    collector.faults.delay = 30
    request = asyncio.create_task(send(session, collector, batch("slow")))
    deadline = time.monotonic() + 5
    while collector.in_flight == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert collector.in_flight == 1
    started = time.monotonic()
    await collector.stop()
    assert time.monotonic() - started < 3
    with pytest.raises(aiohttp.ClientError):
        await request
    assert collector.in_flight == 0
    assert collector.store.requests[0].status == RESET


async def test_reject_message_ids_refuses_the_batch(collector: Collector, session: aiohttp.ClientSession) -> None:
    """A batch holding a rejected message id is a 400 invalid_event; the same events without it pass."""
    collector.faults.reject_message_ids = {"poison"}
    async with session.post(collector.url + "/v1/batch", json=batch("a", "poison", "b"), headers=headers()) as r:
        assert r.status == 400
        assert (await r.json())["code"] == "invalid_event"
    assert (await send(session, collector, batch("a", "b"))).status == 200
    assert collector.store.message_ids() == ["a", "b"]


async def test_revoked_key_is_401_beside_healthy_ones(collector: Collector, session: aiohttp.ClientSession) -> None:
    """A revoked write key gets 401 while another key is accepted."""
    collector.faults.revoked_write_keys = {"revoked"}
    async with session.post(collector.url + "/v1/batch", json=batch("r"), headers=headers("revoked")) as r:
        assert r.status == 401
        assert (await r.json())["code"] == "unauthorized"
    assert (await send(session, collector, batch("h"))).status == 200
    assert collector.store.message_ids() == ["h"]


async def test_down_answers_503(collector: Collector, session: aiohttp.ClientSession) -> None:
    """``down`` answers every request 503 until it is turned off."""
    collector.faults.down = True
    assert {(await send(session, collector, batch(str(i)))).status for i in range(3)} == {503}
    collector.faults.down = False
    assert (await send(session, collector, batch("up"))).status == 200


async def test_only_write_keys_scopes_the_faults(collector: Collector, session: aiohttp.ClientSession) -> None:
    """With ``only_write_keys``, an outage of one key leaves another key untouched."""
    collector.faults.down = True
    collector.faults.only_write_keys = {"busy"}
    assert (await send(session, collector, batch("b"), key="busy")).status == 503
    assert (await send(session, collector, batch("q"), key="quiet")).status == 200


async def test_faults_over_http(collector: Collector, session: aiohttp.ClientSession) -> None:
    """POST /_collector/faults sets faults (keys shown back only as hashes); DELETE clears them."""
    body = {"throttle_next": 1, "retry_after": 2, "revoked_write_keys": ["secret-key"], "delay": 0.01}
    async with session.post(collector.url + "/_collector/faults", json=body) as response:
        assert response.status == 200
        text = await response.text()
    assert "secret-key" not in text
    assert collector.faults.throttle_next == 1
    assert collector.faults.revoked_write_keys == {"secret-key"}
    assert (await send(session, collector, batch("a"))).status == 429
    async with session.delete(collector.url + "/_collector/faults") as response:
        assert response.status == 200
    assert collector.faults == Faults()
    assert (await send(session, collector, batch("b"))).status == 200


@pytest.mark.parametrize(
    "body",
    [{"error_rate": 2}, {"nonsense": 1}, {"down": "yes"}, {"throttle_next": 1.5}, {"error_statuses": [42]}, [1]],
    ids=["rate-range", "unknown", "bool", "int", "status", "not-object"],
)
async def test_bad_faults_over_http_are_400(collector: Collector, session: aiohttp.ClientSession, body: Any) -> None:
    """A bad fault setting is refused with a message naming the field, and nothing changes."""
    async with session.post(collector.url + "/_collector/faults", json=body) as response:
        assert response.status == 400
        assert (await response.json())["code"] == "invalid_faults"
    assert collector.faults == Faults()


async def test_max_requests_in_window_over_sockets(collector: Collector, session: aiohttp.ClientSession) -> None:
    """Twenty quick requests, half of them refused, all count in the window."""
    collector.faults.error_rate = 0.5
    await asyncio.gather(*(send(session, collector, batch(str(i))) for i in range(20)))
    assert collector.store.max_requests_in_window(1.0) == 20
    assert len(collector.store.requests) == 20


def test_faults_update_is_atomic() -> None:
    """An update with one bad field changes nothing and names each bad field."""
    faults = Faults()
    with pytest.raises(ValueError, match="reset_rate") as caught:
        faults.update({"throttle_next": 3, "reset_rate": -1, "delay": "slow"})
    assert "delay" in str(caught.value)
    assert "throttle_next" not in str(caught.value)
    assert faults.throttle_next == 0
