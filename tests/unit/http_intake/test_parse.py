"""Segment HTTP requests read into calls, without a socket: routes, write keys, bounded inflating, events."""

from __future__ import annotations

import base64
import gzip
import time

import orjson
import pytest

from sidecar.errors import InvalidEvent
from sidecar.http_intake.parse import (
    MAX_BATCH_BODY_BYTES,
    Envelope,
    RequestProblem,
    Route,
    batch_items,
    envelope,
    inflate,
    json_field,
    parse_body,
    route,
    to_call,
    write_key_from_header,
)
from sidecar.model import CallType, Region

SHARED = Envelope("wk", Region.US, None, None, too_deep=False)


def basic(user: str, password: str = "") -> str:
    """An Authorization header value for Basic credentials."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/batch", Route(None, None)),
        ("/v1/import", Route(None, None)),
        ("/v1/track", Route(None, CallType.TRACK)),
        ("/v1/alias/", Route(None, CallType.ALIAS)),
        ("/eu/v1/batch", Route(Region.EU, None)),
        ("/us/v1/identify", Route(Region.US, CallType.IDENTIFY)),
        ("/v1/b", None),
        ("/fr/v1/batch", None),
        ("/v2/batch", None),
        ("/eu/eu/v1/batch", None),
    ],
)
def test_routes_choose_region_and_call(path: str, expected: Route | None) -> None:
    """The path's prefix chooses the region and its last part the call; anything else is no route."""
    assert route(path) == expected


def test_write_key_comes_from_basic_auth_and_ignores_the_password() -> None:
    """Basic auth's username is the write key, with or without a password; a Bearer token leaves the body to decide."""
    assert write_key_from_header(basic("wk-1")) == "wk-1"
    assert write_key_from_header(basic("wk-1", "ignored")) == "wk-1"
    assert write_key_from_header("Bearer abc") is None
    assert write_key_from_header(None) is None


@pytest.mark.parametrize(
    "header",
    ["Basic !!!notbase64", "Digest abc", basic(""), "Basic " + base64.b64encode(b"\xff\xfe:").decode(), "B" * 5000],
)
def test_a_bad_authorization_header_is_a_400(header: str) -> None:
    """Broken base64, another scheme, an empty key, bytes that are not UTF-8 or a huge header refuse the request."""
    with pytest.raises(RequestProblem) as caught:
        write_key_from_header(header)
    assert caught.value.status == 400 and caught.value.code == "invalid_authorization"


def test_gzip_bodies_inflate_and_bombs_stop_at_the_limit() -> None:
    """A gzip body inflates; one inflating past the limit is refused having inflated at most limit + 1 bytes."""
    assert inflate(gzip.compress(b'{"a":1}'), "gzip", 100) == b'{"a":1}'
    bomb = gzip.compress(b"0" * (50 * 2**20))  # 50 MiB of zeros in about 50 KB
    started = time.perf_counter()
    with pytest.raises(RequestProblem) as caught:
        inflate(bomb, "gzip", MAX_BATCH_BODY_BYTES)
    assert caught.value.code == "request_too_large"
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("body", "encoding", "code"),
    [
        (b"x" * 101, None, "request_too_large"),
        (b"not gzip", "gzip", "invalid_gzip"),
        (gzip.compress(b"{}")[:-4], "gzip", "invalid_gzip"),
        (gzip.compress(b"{}") + b"junk", "gzip", "invalid_gzip"),
        (b"{}", "br", "unsupported_encoding"),
    ],
)
def test_bodies_that_cannot_be_read_are_refused(body: bytes, encoding: str | None, code: str) -> None:
    """Too large, not gzip, truncated gzip, trailing data and unknown encodings each have their code."""
    with pytest.raises(RequestProblem) as caught:
        inflate(body, encoding, 100)
    assert caught.value.code == code


@pytest.mark.parametrize("body", [b"{", b"[1]", b"nul", b"[" * 2000 + b"]" * 2000])
def test_invalid_json_is_a_400(body: bytes) -> None:
    """Text that is not a JSON object (deep nesting past orjson's limit included) is invalid_json."""
    with pytest.raises(RequestProblem) as caught:
        parse_body(body)
    assert caught.value.code == "invalid_json"


def test_the_write_key_falls_back_to_the_body_and_is_required() -> None:
    """The header's key wins; without one the body's writeKey counts; with neither the request is refused."""
    body = {"writeKey": "from-body", "batch": []}
    assert envelope(b"{}", body, "from-header", Region.US).write_key == "from-header"
    assert envelope(b"{}", body, None, Region.EU).write_key == "from-body"
    with pytest.raises(RequestProblem) as caught:
        envelope(b"{}", {"batch": []}, None, Region.US)
    assert caught.value.code == "missing_write_key"
    with pytest.raises(RequestProblem):
        batch_items({"batch": {"type": "track"}})


def test_an_event_becomes_a_call_in_segment_order_with_extras_kept() -> None:
    """Fields keep Segment's names; numbers as ids become strings; extras pass; writeKey and sentAt do not."""
    item = {
        "type": "track",
        "sentAt": "2026-01-01T00:00:00Z",
        "writeKey": "inner",
        "userId": 42,
        "event": "Email Opened",
        "properties": {"a": 1},
        "originalTimestamp": "x",
        "messageId": "m-1",
        "timestamp": "2023-11-14T22:13:20.123456+00:00",
    }
    call = to_call(item, None, SHARED, 1.0)
    assert call.type is CallType.TRACK and call.write_key == "wk"
    assert list(call.fields) == ["event", "userId", "properties", "originalTimestamp", "messageId", "timestamp"]
    assert call.fields["userId"] == "42"
    assert call.fields["timestamp"] == (1_700_000_000, 123)
    assert call.parsed["properties"] == {"a": 1}


def test_batch_context_and_integrations_are_defaults_each_event_overrides() -> None:
    """A batch's context merges under each event's own context (the event's keys win), as Segment merges it."""
    shared = Envelope("wk", Region.US, {"library": {"name": "analytics-go"}, "ip": "1"}, {"All": False}, False)
    call = to_call({"type": "identify", "userId": "u", "context": {"ip": "2"}}, None, shared, 1.0)
    assert call.fields["context"] == {"library": {"name": "analytics-go"}, "ip": "2"}
    assert call.fields["integrations"] == {"All": False}


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"type": "nope", "userId": "u"}, "type"),
        ({"userId": "u"}, "type"),
        ({"type": "track", "userId": ["u"], "event": "E"}, "userId"),
        ({"type": "track", "userId": "u", "event": "E", "properties": [1]}, "properties"),
        ({"type": "track", "userId": "u", "event": "E", "timestamp": "yesterday"}, "timestamp"),
        ({"type": "track", "userId": "u", "event": "E", "timestamp": "0001-01-01T00:00:00Z"}, "timestamp"),
        ({"type": "track", "userId": "u", "event": "E", "messageId": "m" * 100}, "messageId"),
        ({"type": "track", "userId": "u" * 2000, "event": "E"}, "userId"),
        ("a string", "event"),
    ],
)
def test_a_bad_event_is_refused_naming_its_field(item: object, field: str) -> None:
    """Each ill-formed event raises InvalidEvent naming the JSON field."""
    with pytest.raises(InvalidEvent) as caught:
        to_call(item, None, SHARED, 1.0)
    assert caught.value.violations[0].field == field


def test_a_deep_event_is_refused_alone_when_the_body_is_deep() -> None:
    """When the body nests past the limit, the deep event is refused; its shallow neighbours are read."""
    deep: object = "x"
    for _ in range(80):
        deep = {"a": deep}
    body = {"batch": [{"type": "identify", "userId": "u", "traits": deep}, {"type": "identify", "userId": "v"}]}
    raw = orjson.dumps(body)
    shared = envelope(raw, body, "wk", Region.US)
    assert shared.too_deep
    with pytest.raises(InvalidEvent):
        to_call(body["batch"][0], None, shared, 1.0)
    assert to_call(body["batch"][1], None, shared, 1.0).fields["userId"] == "v"


def test_single_call_endpoints_use_the_path_type() -> None:
    """On /v1/group the path decides the type, whatever the body's type says."""
    call = to_call({"type": "track", "userId": "u", "groupId": 7}, CallType.GROUP, SHARED, 1.0)
    assert call.type is CallType.GROUP and call.fields["groupId"] == "7"


def test_validator_fields_are_shown_in_json_names() -> None:
    """The pipeline's gRPC field names are translated for HTTP callers."""
    assert json_field("user_id") == "userId"
    assert json_field("traits_json") == "traits"
    assert json_field("properties.revenue") == "properties.revenue"
