"""Segment's HTTP Tracking API on a real sidecar (SIDECAR_HTTP_LISTEN), over real sockets, into real collectors."""

from __future__ import annotations

import base64
import gzip
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from structlog.testing import capture_logs

from sidecar._proto import sidecar_pb2 as pb
from sidecar.api.places import Places
from sidecar.app import Sidecar
from sidecar.config import load
from sidecar.errors import ConfigError
from sidecar.http_intake import TOKEN_HEADER, HttpIntake
from sidecar.intake import Intake
from sidecar.model import Call, Event, Region, Warning
from tests.conftest import SidecarFactory
from tests.support.harness import TEST_ENV, Collectors, SidecarUnderTest

HTTP = {"SIDECAR_HTTP_LISTEN": "127.0.0.1:0"}


def auth(write_key: str) -> dict[str, str]:
    """Basic auth as Segment's libraries send it: the write key, a colon, an empty password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


def base(running: SidecarUnderTest) -> str:
    """The HTTP intake's origin."""
    assert running.app.http_intake is not None
    return f"http://127.0.0.1:{running.app.http_intake.port}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client."""
    async with aiohttp.ClientSession() as client:
        yield client


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST JSON (or bytes as they are); return status, JSON answer and headers."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with session.post(url, data=data, headers={"Content-Type": "application/json", **(headers or {})}) as reply:
        return reply.status, orjson.loads(await reply.read()), dict(reply.headers)


async def flush(running: SidecarUnderTest) -> None:
    """Wait for delivery of everything accepted."""
    await running.stub.Flush(pb.FlushRequest(), timeout=10)


async def test_every_endpoint_spools_and_answers_success(
    sidecar_factory: SidecarFactory, collectors: Collectors, session: aiohttp.ClientSession
) -> None:
    """Each call endpoint, /v1/batch and /v1/import accept Segment's bodies; events arrive enriched, ids kept."""
    running = await sidecar_factory(**HTTP)
    url = base(running)
    calls = {
        "track": {"userId": "u1", "event": "Email Opened", "properties": {"n": 3}, "messageId": "t-1"},
        "identify": {"userId": "u1", "traits": {"email": "a@example.com"}, "timestamp": "2023-11-14T22:13:20.123Z"},
        "page": {"userId": "u1", "name": "Pricing", "category": "Docs"},
        "screen": {"userId": "u1", "name": "Inbox"},
        "group": {"userId": "u1", "groupId": "g1", "traits": {"name": "Acme"}},
        "alias": {"userId": "u1", "previousId": "anon-1"},
    }
    for name, body in calls.items():
        status, answer, _ = await post(session, f"{url}/v1/{name}", body, auth("wk-2"))
        assert (status, answer) == (200, {"success": True})
    for path in ("batch", "import"):
        batch = {"batch": [{"type": "track", "userId": "u2", "event": "Email Sent", "messageId": f"{path}-1"}]}
        status, answer, _ = await post(session, f"{url}/v1/{path}", batch, auth("wk-3"))
        assert (status, answer) == (200, {"success": True})
    await flush(running)
    by_type = {event["type"]: event for event in collectors.us.store.events("wk-2")}
    assert set(by_type) == set(calls)
    for event in collectors.us.store.events():
        assert event["context"]["integration"] == {"name": "acme-mail", "version": "1.0.0"}
        assert event["context"]["library"]["name"] == "segment-sidecar"
        assert event["messageId"]
    assert by_type["track"]["messageId"] == "t-1" and by_type["track"]["properties"] == {"n": 3}
    assert by_type["identify"]["timestamp"] == "2023-11-14T22:13:20.123Z"
    assert by_type["group"]["groupId"] == "g1" and by_type["alias"]["previousId"] == "anon-1"
    assert sorted(collectors.us.store.message_ids("wk-3")) == ["batch-1", "import-1"]


async def test_region_prefix_body_write_key_and_gzip(
    sidecar_factory: SidecarFactory, collectors: Collectors, session: aiohttp.ClientSession
) -> None:
    """/eu/v1 goes to the EU collector, /us/v1 to the US one; writeKey in the body works; gzip bodies are read."""
    running = await sidecar_factory(**HTTP)
    url = base(running)
    event = {"type": "track", "userId": "u", "event": "Email Opened"}
    body = gzip.compress(orjson.dumps({"writeKey": "wk-eu", "batch": [event]}))
    status, _, _ = await post(session, f"{url}/eu/v1/batch", body, {"Content-Encoding": "gzip"})
    assert status == 200
    status, _, _ = await post(session, f"{url}/us/v1/batch", {"writeKey": "wk-us", "batch": [event]})
    assert status == 200
    await flush(running)
    assert len(collectors.eu.store.events("wk-eu")) == 1 and not collectors.us.store.events("wk-eu")
    assert len(collectors.us.store.events("wk-us")) == 1


async def test_refused_events_are_named_and_the_others_accepted(
    sidecar_factory: SidecarFactory, collectors: Collectors, session: aiohttp.ClientSession
) -> None:
    """A batch with a missing userId, a near-miss Spec name and an event over 32 KB: 400 naming each, rest spooled."""
    running = await sidecar_factory(**HTTP)
    batch = [
        {"type": "track", "userId": "u", "event": "Email Opened", "messageId": "ok-1"},
        {"type": "track", "anonymousId": "a", "event": "Email Opened", "messageId": "no-user"},
        {"type": "track", "userId": "u", "event": "Email Unsubscribed", "messageId": "near-miss"},
        {"type": "track", "userId": "u", "event": "Big", "properties": {"x": "y" * 40_000}, "messageId": "big"},
        {"type": "identify", "userId": "u", "messageId": "ok-2"},
    ]
    status, answer, _ = await post(session, f"{base(running)}/v1/batch", {"batch": batch}, auth("wk-p"))
    assert status == 400 and answer["code"] == "events_refused" and answer["accepted"] == 2
    refused = {item["messageId"]: item for item in answer["refused"]}
    assert set(refused) == {"no-user", "near-miss", "big"}
    assert refused["no-user"]["index"] == 1 and refused["no-user"]["field"] == "userId"
    assert refused["near-miss"]["field"] == "event" and "Unsubscribed" in refused["near-miss"]["reason"]
    assert refused["big"]["index"] == 3 and "32,768" in refused["big"]["reason"]
    assert refused["big"]["field"] == "properties"
    await flush(running)
    assert sorted(collectors.us.store.message_ids("wk-p")) == ["ok-1", "ok-2"]


async def test_a_repeated_key_refuses_its_event_alone_and_one_in_the_envelope_the_request(
    sidecar_factory: SidecarFactory, collectors: Collectors, session: aiohttp.ClientSession
) -> None:
    """JSON that repeats a key reads differently to different parsers: that event is refused naming the key's path,
    the others are spooled; a repeat in the batch's shared context refuses the whole request."""
    running = await sidecar_factory(**HTTP)
    body = (
        b'{"batch": ['
        b'{"type": "track", "userId": "u", "event": "Order Completed", "messageId": "twice",'
        b' "properties": {"revenue": "ten", "revenue": 10}},'
        b'{"type": "track", "userId": "u", "event": "Email Opened", "messageId": "once"}]}'
    )
    status, answer, _ = await post(session, f"{base(running)}/v1/batch", body, auth("wk-dup"))
    assert status == 400 and answer["accepted"] == 1
    (refused,) = answer["refused"]
    assert refused["index"] == 0 and refused["field"] == "properties.revenue" and "repeats" in refused["reason"]
    shared = b'{"context": {"integration": {"name": "other"}, "integration": {"name": "x"}}, "batch": []}'
    status, answer, _ = await post(session, f"{base(running)}/v1/batch", shared, auth("wk-dup"))
    assert status == 400 and answer["code"] == "duplicate_key" and "context.integration" in answer["message"]
    await flush(running)
    assert collectors.us.store.message_ids("wk-dup") == ["once"]


async def test_a_resent_request_spools_its_accepted_events_once(
    sidecar_factory: SidecarFactory, collectors: Collectors, session: aiohttp.ClientSession
) -> None:
    """A library re-sending a partly refused request (analytics-go does) does not send its accepted events twice."""
    running = await sidecar_factory(**HTTP)
    batch = {
        "batch": [
            {"type": "track", "userId": "u", "event": "Email Opened", "messageId": "once"},
            {"type": "track", "event": "Email Opened", "messageId": "never"},
            {"type": "track", "userId": "u", "event": "Email Opened"},
        ]
    }
    for _ in range(3):
        status, answer, _ = await post(session, f"{base(running)}/v1/batch", batch, auth("wk-r"))
        assert status == 400 and [item["index"] for item in answer["refused"]] == [1]
        assert answer["accepted"] == 2  # the recognised event counts as accepted: it is in the spool
    await flush(running)
    ids = collectors.us.store.message_ids("wk-r")
    assert ids.count("once") == 1 and "never" not in ids
    assert len(ids) == 4  # the event without a messageId gets a new id each time, so each copy is new


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/v1/batch", b"{not json", "invalid_json"),
        ("/v1/batch", b'{"batch": 1}', "invalid_request"),
        (
            "/v1/track",
            orjson.dumps({"userId": "u", "event": "E", "properties": {"x": "y" * 33_000}}),
            "request_too_large",
        ),
        ("/v1/batch", orjson.dumps({"batch": [{"type": "track", "p": "y" * 30_000}] * 17}), "request_too_large"),
    ],
)
async def test_unreadable_requests_get_segments_error_shape(
    sidecar_factory: SidecarFactory, session: aiohttp.ClientSession, path: str, body: bytes, code: str
) -> None:
    """Invalid JSON, a batch that is not a list, a call over 32 KB and a batch over 500 KB: 400 {code, message}."""
    running = await sidecar_factory(**HTTP)
    status, answer, _ = await post(session, base(running) + path, body, auth("wk"))
    assert status == 400 and answer["code"] == code and answer["message"]


async def test_paths_methods_and_browsers_are_answered_in_json(
    sidecar_factory: SidecarFactory, session: aiohttp.ClientSession
) -> None:
    """Unknown path 404, GET 405, a cross-origin write 403, no write key 400: all as {code, message}."""
    running = await sidecar_factory(**HTTP)
    url = base(running)
    assert (await post(session, f"{url}/v2/batch", {}))[:2][0] == 404
    async with session.get(f"{url}/v1/batch") as reply:
        assert reply.status == 405 and (await reply.json())["code"] == "method_not_allowed"
    status, answer, _ = await post(session, f"{url}/v1/track", {}, {"Origin": "http://evil.example"})
    assert (status, answer["code"]) == (403, "forbidden")
    status, answer, _ = await post(session, f"{url}/v1/track", {"userId": "u", "event": "E"})
    assert (status, answer["code"]) == (400, "missing_write_key")


async def test_a_full_spool_answers_429_with_retry_after(
    sidecar_factory: SidecarFactory, collectors: Collectors, session: aiohttp.ClientSession
) -> None:
    """When the spool is full the whole request is refused with 429 and Retry-After, and nothing of it is spooled."""
    running = await sidecar_factory(
        **HTTP, SIDECAR_SPOOL="memory", SIDECAR_SPOOL_MAX_BYTES="32KiB", SIDECAR_METRICS_LISTEN="127.0.0.1:0"
    )
    padding = {"note": "x" * 300}  # 100 events of about 400 bytes: more than the 32 KiB spool holds
    events = [
        {"type": "track", "userId": "u", "event": "Email Opened", "messageId": f"m{i}", "properties": padding}
        for i in range(100)
    ]
    status, answer, headers = await post(session, f"{base(running)}/v1/batch", {"batch": events}, auth("wk-f"))
    assert (status, answer["code"]) == (429, "spool_full")
    assert int(headers["Retry-After"]) >= 1
    assert running.app.spool.pending_events == 0
    assert running.app.metrics is not None
    text = (await running.app.metrics.render()).decode()
    assert 'sidecar_events_received_total{intake="http",rpc="batch"} 100.0' in text
    assert 'sidecar_events_rejected_total{reason="resource_exhausted",type="unknown"} 100.0' in text


async def test_shutting_down_answers_503(sidecar_factory: SidecarFactory, session: aiohttp.ClientSession) -> None:
    """Once the sidecar stops accepting (the first step of its stop), requests get 503 and nothing is spooled."""
    running = await sidecar_factory(**HTTP)
    assert running.app.http_intake is not None
    running.app.http_intake.accepting = False
    status, answer, _ = await post(session, f"{base(running)}/v1/track", {"userId": "u", "event": "E"}, auth("wk"))
    assert (status, answer["code"]) == (503, "shutting_down")
    assert running.app.spool.pending_events == 0


async def test_metrics_count_http_events_by_intake(
    sidecar_factory: SidecarFactory, session: aiohttp.ClientSession
) -> None:
    """sidecar_events_received_total carries intake="http" for events that came over Segment's API."""
    running = await sidecar_factory(**HTTP, SIDECAR_METRICS_LISTEN="127.0.0.1:0")
    batch = {"batch": [{"type": "identify", "userId": "u"}, {"type": "identify"}]}
    await post(session, f"{base(running)}/v1/batch", batch, auth("wk-m"))
    assert running.app.metrics is not None
    text = (await running.app.metrics.render()).decode()
    assert 'sidecar_events_received_total{intake="http",rpc="batch"} 2.0' in text
    assert 'sidecar_events_accepted_total{type="identify"} 1.0' in text
    assert 'sidecar_events_rejected_total{reason="invalid_argument",type="identify"} 1.0' in text


async def test_beyond_loopback_needs_the_token_or_a_decision(tmp_path: Path) -> None:
    """SIDECAR_HTTP_LISTEN beyond loopback is refused at start without SIDECAR_AUTH_TOKEN or an explicit allow."""
    with pytest.raises(ConfigError) as caught:
        load({"SIDECAR_HTTP_LISTEN": "0.0.0.0:8080"})
    assert "SIDECAR_HTTP_LISTEN" in caught.value.problems[0]
    assert load({"SIDECAR_HTTP_LISTEN": "0.0.0.0:8080", "SIDECAR_ALLOW_UNAUTHENTICATED": "true"})[0].http_listen
    assert load({"SIDECAR_HTTP_LISTEN": "127.0.0.1:8080"})[0].http_listen == "127.0.0.1:8080"
    assert load({})[0].http_listen is None


async def test_beyond_loopback_the_token_header_is_required(
    sidecar_factory: SidecarFactory, session: aiohttp.ClientSession
) -> None:
    """Listening beyond loopback with SIDECAR_AUTH_TOKEN, a request without the X-Sidecar-Token header gets 401."""
    running = await sidecar_factory(SIDECAR_HTTP_LISTEN="0.0.0.0:0", SIDECAR_AUTH_TOKEN="s3cret")
    url = f"{base(running)}/v1/identify"
    status, answer, _ = await post(session, url, {"userId": "u"}, auth("wk"))
    assert (status, answer["code"]) == (401, "unauthorized")
    assert "s3cret" not in answer["message"]
    status, _, _ = await post(session, url, {"userId": "u"}, {**auth("wk"), TOKEN_HEADER: "s3cret"})
    assert status == 200


async def test_lifecycle_stop_is_safe_unstarted_and_twice(sidecar: SidecarUnderTest) -> None:
    """stop() without start() does nothing; start, stop, stop again is fine."""
    downstream = sidecar.app.servicer._downstream
    assert isinstance(downstream, Intake)
    intake = HttpIntake(downstream, "127.0.0.1:0", sidecar.app.settings.default_region, sidecar.app.call_places)
    await intake.stop()
    await intake.start()
    assert intake.port > 0 and intake.accepting
    await intake.stop()
    await intake.stop()
    assert not intake.accepting


async def test_a_busy_http_port_is_a_start_up_error_naming_the_variable(collectors: Collectors, tmp_path: Path) -> None:
    """SIDECAR_HTTP_LISTEN on a port already taken fails start with a ConfigError naming it (exit status 2)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings, _ = load(
            {
                **TEST_ENV,
                **collectors.env(),
                "SIDECAR_LISTEN": "127.0.0.1:0",
                "SIDECAR_SPOOL_DIR": str(tmp_path / "spool"),
                "SIDECAR_HTTP_LISTEN": f"127.0.0.1:{port}",
            }
        )
        app = Sidecar(settings)
        try:
            with pytest.raises(ConfigError) as caught:
                await app.start()
        finally:
            await app.stop(grace=0)
    assert caught.value.problems[0].startswith(f"SIDECAR_HTTP_LISTEN: cannot listen on 127.0.0.1:{port}")


class BrokenDownstream:
    """A downstream whose checks fail with a bug (not a SidecarError), to see what the caller gets."""

    pending_events = 0

    def prepare(self, call: Call) -> tuple[Event, list[Warning]]:
        """Fail as a bug would."""
        raise RuntimeError("secret-detail-in-a-bug")

    async def accept(self, events: Sequence[Event]) -> None:
        """Never reached."""

    async def flush(self) -> Any:
        """Never reached."""


async def test_a_bug_is_a_plain_500_without_a_traceback(session: aiohttp.ClientSession) -> None:
    """An unexpected exception answers 500 {code: internal} naming no detail; the traceback goes to the log."""
    intake = HttpIntake(BrokenDownstream(), "127.0.0.1:0", Region.US, Places(1))
    await intake.start()
    try:
        with capture_logs() as logs:
            status, answer, _ = await post(
                session, f"http://127.0.0.1:{intake.port}/v1/identify", {"userId": "u"}, auth("wk")
            )
    finally:
        await intake.stop()
    assert (status, answer["code"]) == (500, "internal")
    assert "secret-detail" not in answer["message"] and "Traceback" not in answer["message"]
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == ["http_internal_error"]
