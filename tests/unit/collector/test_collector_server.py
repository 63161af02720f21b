"""The collector's ``/v1/batch``: Segment's checks over real sockets, the admin routes and the lifecycle."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from sidecar.collector import Collector
from sidecar.model import write_key_hash

KEY = "wk_test_collector_1"


def basic(key: str, colon: bool = True) -> str:
    """The Basic Authorization header for a write key."""
    raw = f"{key}:" if colon else key
    return "Basic " + base64.b64encode(raw.encode()).decode()


def track(message_id: str, **extra: Any) -> dict[str, Any]:
    """A valid track event."""
    return {"type": "track", "userId": "user-1", "event": "Email Opened", "messageId": message_id, **extra}


async def post(
    session: aiohttp.ClientSession,
    collector: Collector,
    body: Any,
    key: str | None = KEY,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """POST a batch (a dict is sent as JSON, bytes as they are); return the status and the parsed JSON answer."""
    data: bytes | io.BytesIO = body if isinstance(body, bytes) else orjson.dumps(body)
    if len(data) > 1_000_000:
        data = io.BytesIO(data)  # aiohttp warns that a large bytes body blocks the loop
    sent = {"Content-Type": "application/json"}
    if key is not None:
        sent["Authorization"] = basic(key)
    sent.update(headers or {})
    async with session.post(collector.url + "/v1/batch", data=data, headers=sent) as response:
        return response.status, await response.json(content_type=None)


async def test_good_batch_is_accepted_and_stored(collector: Collector, session: aiohttp.ClientSession) -> None:
    """A valid batch gets 200 {"success": true}; its events, key, size and headers are recorded."""
    body = {"batch": [track("m1", properties={"n": 3}), track("m2")], "sentAt": "2026-11-26T10:00:00.000Z"}
    status, answer = await post(session, collector, body, headers={"User-Agent": "segment-sidecar/0.1.0"})
    assert (status, answer) == (200, {"success": True})
    assert collector.store.message_ids() == ["m1", "m2"]
    assert collector.store.events(KEY)[0]["properties"] == {"n": 3}
    received = collector.store.requests[0]
    assert received.write_key == KEY
    assert received.auth_scheme == "basic"
    assert received.body_bytes == len(orjson.dumps(body))
    assert received.headers["User-Agent"] == "segment-sidecar/0.1.0"
    assert received.started_at > 0


async def test_every_call_type_is_accepted(collector: Collector, session: aiohttp.ClientSession) -> None:
    """The six Spec calls, alias included, each with its own required field, pass."""
    batch = [
        track("t"),
        {"type": "identify", "userId": "u", "traits": {"email": "a@example.com"}},
        {"type": "page", "anonymousId": "anon", "name": "Home"},
        {"type": "screen", "userId": 42, "name": "Inbox"},
        {"type": "group", "userId": "u", "groupId": "g"},
        {"type": "alias", "userId": "u", "previousId": "old"},
    ]
    status, _ = await post(session, collector, {"batch": batch})
    assert status == 200
    assert len(await collector.store.wait_for_events(6, timeout=5)) == 6


async def test_retry_count_header_is_recorded(collector: Collector, session: aiohttp.ClientSession) -> None:
    """``X-Retry-Count`` is kept in the recorded headers, to check a sender's retries."""
    await post(session, collector, {"batch": [track("m")]}, headers={"X-Retry-Count": "2"})
    assert collector.store.requests[0].headers["X-Retry-Count"] == "2"


async def test_gzip_body_is_accepted(collector: Collector, session: aiohttp.ClientSession) -> None:
    """A gzip body (Content-Encoding: gzip) is decompressed; the size recorded is the decompressed one."""
    raw = orjson.dumps({"batch": [track("gz")]})
    status, _ = await post(session, collector, gzip.compress(raw), headers={"Content-Encoding": "gzip"})
    assert status == 200
    assert collector.store.message_ids() == ["gz"]
    assert collector.store.requests[0].body_bytes == len(raw)


async def test_bad_gzip_is_400(collector: Collector, session: aiohttp.ClientSession) -> None:
    """A body that claims gzip but is not gzip is refused, not a server crash."""
    status, answer = await post(session, collector, b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert status == 400
    assert answer["code"] in {"invalid_body", "invalid_json"}


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic " + base64.b64encode(b":").decode(), "Basic !!!notbase64", "Token abc"],
    ids=["missing", "empty-key", "undecodable", "other-scheme"],
)
async def test_bad_auth_is_401(collector: Collector, session: aiohttp.ClientSession, authorization: str | None) -> None:
    """Without valid Basic credentials the answer is 401 {"code": "unauthorized"} and nothing counts as delivered."""
    headers = {} if authorization is None else {"Authorization": authorization}
    status, answer = await post(session, collector, {"batch": [track("m")]}, key=None, headers=headers)
    assert status == 401
    assert answer["code"] == "unauthorized"
    assert collector.store.events() == []
    assert collector.store.requests[0].status == 401


async def test_write_key_in_body_alone_is_401(collector: Collector, session: aiohttp.ClientSession) -> None:
    """``writeKey`` in the body without a header is refused (partners must send the key in a header)."""
    status, _ = await post(session, collector, {"writeKey": KEY, "batch": [track("m")]}, key=None)
    assert status == 401
    assert collector.store.requests[0].write_key == KEY


async def test_basic_without_colon_is_accepted(collector: Collector, session: aiohttp.ClientSession) -> None:
    """Segment still takes ``base64(key)`` without the trailing colon, for old senders."""
    status, _ = await post(
        session, collector, {"batch": [track("m")]}, key=None, headers={"Authorization": basic(KEY, colon=False)}
    )
    assert status == 200
    assert collector.store.events(KEY)


async def test_bearer_refused_without_verifier(collector: Collector, session: aiohttp.ClientSession) -> None:
    """A Bearer token is a 401 until a verifier is plugged in."""
    body = {"writeKey": KEY, "batch": [track("m")]}
    status, _ = await post(session, collector, body, key=None, headers={"Authorization": "Bearer tok"})
    assert status == 401


async def test_bearer_with_verifier(collector: Collector, session: aiohttp.ClientSession) -> None:
    """With a verifier, a good token plus ``writeKey`` in the body passes; a bad token or a missing key is 401."""
    seen: list[tuple[str, str]] = []

    def verify(token: str, write_key: str) -> str | None:
        seen.append((token, write_key))
        return None if token == "good" else "token expired"

    collector.bearer_verifier = verify
    body = {"writeKey": KEY, "batch": [track("m")]}
    assert (await post(session, collector, body, key=None, headers={"Authorization": "Bearer good"}))[0] == 200
    status, answer = await post(session, collector, body, key=None, headers={"Authorization": "Bearer bad"})
    assert (status, answer["message"]) == (401, "token expired")
    no_key = {"batch": [track("m")]}
    assert (await post(session, collector, no_key, key=None, headers={"Authorization": "Bearer good"}))[0] == 401
    assert seen == [("good", KEY), ("bad", KEY)]
    assert collector.store.requests[0].auth_scheme == "bearer"
    assert collector.store.events(KEY)


async def test_wrong_content_type_is_400(collector: Collector, session: aiohttp.ClientSession) -> None:
    """Segment requires Content-Type: application/json."""
    status, answer = await post(session, collector, {"batch": [track("m")]}, headers={"Content-Type": "text/plain"})
    assert (status, answer["code"]) == (400, "invalid_content_type")


async def test_json_with_charset_is_accepted(collector: Collector, session: aiohttp.ClientSession) -> None:
    """``application/json; charset=utf-8`` is still JSON."""
    headers = {"Content-Type": "application/json; charset=utf-8"}
    assert (await post(session, collector, {"batch": [track("m")]}, headers=headers))[0] == 200


async def test_body_over_500kb_is_400(collector: Collector, session: aiohttp.ClientSession) -> None:
    """A body over 500,000 bytes is refused even when every event is small; one just under passes."""
    padding = "x" * 20_000
    events = [track(f"m{i}", properties={"p": padding}) for i in range(25)]
    body = {"batch": events}
    assert len(orjson.dumps(body)) > 500_000
    status, answer = await post(session, collector, body)
    assert (status, answer["code"]) == (400, "request_too_large")
    fits = {"batch": events[:24]}
    assert len(orjson.dumps(fits)) <= 500_000
    assert (await post(session, collector, fits))[0] == 200


async def test_huge_body_is_400_not_a_hang(collector: Collector, session: aiohttp.ClientSession) -> None:
    """A body far past the limit (several MB) gets a 400 promptly."""
    status, answer = await post(session, collector, b"[" + b"1," * 5_000_000 + b"1]")
    assert (status, answer["code"]) == (400, "request_too_large")
    assert collector.store.requests[0].body_bytes > 500_000


async def test_event_over_32kb_is_400(collector: Collector, session: aiohttp.ClientSession) -> None:
    """An event whose JSON exceeds 32,768 bytes is refused; one of exactly 32,768 bytes passes."""
    event = track("big", properties={"p": ""})
    overhead = len(orjson.dumps(event))
    event["properties"]["p"] = "x" * (32768 - overhead)
    assert len(orjson.dumps(event)) == 32768
    assert (await post(session, collector, {"batch": [event]}))[0] == 200
    event["properties"]["p"] += "x"
    status, answer = await post(session, collector, {"batch": [track("ok"), event]})
    assert (status, answer["code"]) == (400, "event_too_large")
    assert "batch[1]" in answer["message"]


async def test_2501_events_is_400(collector: Collector, session: aiohttp.ClientSession) -> None:
    """More than 2,500 events is refused (Segment would answer 200 and drop the extra ones); 2,500 pass."""
    events = [{"type": "track", "userId": "u", "event": "E", "messageId": str(i)} for i in range(2501)]
    status, answer = await post(session, collector, {"batch": events})
    assert (status, answer["code"]) == (400, "too_many_events")
    assert (await post(session, collector, {"batch": events[:2500]}))[0] == 200
    assert len(collector.store.events()) == 2500


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'{"batch": [NaN]}', "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'{"events": []}', "invalid_batch"),
        (b'{"batch": {"type": "track"}}', "invalid_batch"),
    ],
    ids=["syntax", "nan", "array", "no-batch", "batch-not-list"],
)
async def test_invalid_json_is_400(
    collector: Collector, session: aiohttp.ClientSession, body: bytes, code: str
) -> None:
    """Invalid JSON, or JSON that is not an object with a ``batch`` list, is a 400 with a JSON error body."""
    status, answer = await post(session, collector, body)
    assert (status, answer["code"]) == (400, code)
    assert answer["message"]


@pytest.mark.parametrize(
    ("event", "code", "field"),
    [
        ({"type": "track", "event": "E"}, "no_user_anon_id", "userId"),
        ({"type": "track", "userId": "", "event": "E"}, "no_user_anon_id", "userId"),
        ({"type": "purchase", "userId": "u"}, "invalid_event", "type"),
        ({"userId": "u", "event": "E"}, "invalid_event", "type"),
        ({"type": "track", "userId": "u"}, "invalid_event", "event"),
        ({"type": "group", "userId": "u"}, "invalid_event", "groupId"),
        ({"type": "alias", "userId": "u"}, "invalid_event", "previousId"),
        ({"type": "track", "userId": "u", "event": "E", "messageId": "m" * 100}, "invalid_event", "messageId"),
        ({"type": "track", "userId": "u", "event": "E", "messageId": 7}, "invalid_event", "messageId"),
        ("just a string", "invalid_event", "object"),
    ],
    ids=[
        "no-ids",
        "empty-user",
        "bad-type",
        "no-type",
        "track-event",
        "group-id",
        "alias-previous",
        "long-mid",
        "int-mid",
        "not-object",
    ],
)
async def test_invalid_event_is_400(
    collector: Collector, session: aiohttp.ClientSession, event: Any, code: str, field: str
) -> None:
    """Each event-level rule refuses the whole batch with a code and a message naming the field."""
    status, answer = await post(session, collector, {"batch": [track("good"), event]})
    assert (status, answer["code"]) == (400, code)
    assert "batch[1]" in answer["message"]
    assert field in answer["message"] or code == "no_user_anon_id"
    assert collector.store.events() == []


async def test_message_id_of_99_chars_passes(collector: Collector, session: aiohttp.ClientSession) -> None:
    """Segment's rule is "shorter than 100 characters": 99 passes (100 is refused above)."""
    assert (await post(session, collector, {"batch": [track("m" * 99)]}))[0] == 200


async def test_other_paths_are_404(collector: Collector, session: aiohttp.ClientSession) -> None:
    """Only ``/v1/batch`` is a tracking route (per-call routes are not used by the sidecar)."""
    async with session.post(collector.url + "/v1/track", json=track("m")) as response:
        assert response.status == 404


async def test_admin_events_and_requests(collector: Collector, session: aiohttp.ClientSession) -> None:
    """The admin routes list events per key and summarise requests by hash, never showing the raw key."""
    await post(session, collector, {"batch": [track("a1")]})
    await post(session, collector, {"batch": [track("b1")]}, key="other-key")
    await post(session, collector, {"batch": [{"type": "track"}]})
    async with session.get(collector.url + "/_collector/events", params={"write_key": KEY}) as response:
        assert [e["messageId"] for e in await response.json()] == ["a1"]
    async with session.get(
        collector.url + "/_collector/events", params={"write_key_hash": write_key_hash("other-key")}
    ) as response:
        assert [e["messageId"] for e in await response.json()] == ["b1"]
    async with session.get(collector.url + "/_collector/events") as response:
        assert len(await response.json()) == 2
    async with session.get(collector.url + "/_collector/requests") as response:
        text = await response.text()
    summary = orjson.loads(text)
    assert summary["count"] == 3
    assert summary["statuses"] == {"200": 2, "400": 1}
    assert summary["max_requests_in_window"] == 3
    assert summary["requests"][0]["write_key_hash"] == write_key_hash(KEY)
    assert KEY not in text


async def test_admin_events_long_poll(collector: Collector, session: aiohttp.ClientSession) -> None:
    """``wait_for=N`` holds the answer until N events of the key arrived; a timeout answers with what there is."""
    url = collector.url + "/_collector/events"
    params = {"write_key": KEY, "wait_for": "2", "timeout": "10"}
    async with session.get(url, params={**params, "timeout": "0.05"}) as response:
        assert await response.json() == []

    async def waiter() -> list[dict[str, Any]]:
        async with session.get(url, params=params) as response:
            events: list[dict[str, Any]] = await response.json()
            return events

    waiting = asyncio.create_task(waiter())
    await post(session, collector, {"batch": [track("w1")]})
    await post(session, collector, {"batch": [track("x")]}, key="someone-else")
    assert not waiting.done()
    await post(session, collector, {"batch": [track("w2")]})
    assert [e["messageId"] for e in await asyncio.wait_for(waiting, 5)] == ["w1", "w2"]
    async with session.get(url, params={"wait_for": "x"}) as response:
        assert response.status == 400


async def test_admin_reset_clears_store_and_faults(collector: Collector, session: aiohttp.ClientSession) -> None:
    """``POST /_collector/reset`` gives a fresh collector on the same port."""
    await post(session, collector, {"batch": [track("a1")]})
    collector.faults.down = True
    async with session.post(collector.url + "/_collector/reset") as response:
        assert response.status == 200
    assert collector.store.requests == []
    assert collector.faults.down is False


async def test_extra_routes_are_mounted() -> None:
    """Routes passed as ``extra_routes`` (an OAuth token server, say) answer on the collector's port."""

    async def token(request: web.Request) -> web.Response:
        return web.json_response({"access_token": "t", "expires_in": 60})

    server = Collector("eu", extra_routes=[web.post("/token", token)])
    await server.start()
    try:
        async with aiohttp.ClientSession() as session, session.post(server.url + "/token") as response:
            assert (await response.json())["access_token"] == "t"
    finally:
        await server.stop()


async def test_stop_without_start_is_safe() -> None:
    """``stop()`` on a collector never started does nothing, twice."""
    server = Collector()
    await server.stop()
    await server.stop()
    with pytest.raises(RuntimeError):
        _ = server.url


async def test_start_stop_twice_keeps_the_port(session: aiohttp.ClientSession) -> None:
    """Start twice is a no-op; after stop the port refuses connections; a restart serves the same URL again."""
    server = Collector("EU")
    assert server.region == "eu"
    await server.start()
    await server.start()
    url = server.url
    await server.stop()
    await server.stop()
    assert not server.running
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(session, server, {"batch": [track("down")]})
    await server.start()
    try:
        assert server.url == url
        assert (await post(session, server, {"batch": [track("up")]}))[0] == 200
    finally:
        await server.stop()


async def test_unknown_region_is_refused() -> None:
    """Only Segment's regions exist."""
    with pytest.raises(ValueError, match="ap"):
        Collector("ap")
