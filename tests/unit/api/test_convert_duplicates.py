"""JSON bytes with a repeated key are refused, naming the key's path; accepted bytes are exactly the checked object."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar.api.convert import to_call
from sidecar.enrich.enricher import Enricher
from sidecar.errors import InvalidEvent
from sidecar.model import CallType, Region

BASE = {"write_key": "wk", "user_id": "u1"}


@pytest.mark.parametrize(
    ("call_type", "request_type", "json_field", "raw", "path"),
    [
        (CallType.TRACK, pb.TrackRequest, "properties_json", b'{"revenue":"ten","revenue":10}', "revenue"),
        (
            CallType.TRACK,
            pb.TrackRequest,
            "context_json",
            b'{"integration":{"name":"another-tool"},"ip":"203.0.113.7","integration":{"name":"x"}}',
            "integration",
        ),
        (CallType.TRACK, pb.TrackRequest, "integrations_json", b'{"All":false,"Mixpanel":true,"All":true}', "All"),
        (CallType.IDENTIFY, pb.IdentifyRequest, "traits_json", b'{"address":{"city":"A","city":"B"}}', "address.city"),
        (
            CallType.TRACK,
            pb.TrackRequest,
            "properties_json",
            b'{"products":[{"sku":"1"},{"sku":"2","sku":"3"}]}',
            "products[1].sku",
        ),
    ],
)
def test_a_repeated_key_is_refused_naming_its_path(
    call_type: CallType, request_type: type, json_field: str, raw: bytes, path: str
) -> None:
    """In every *_json field and at any depth, a key sent twice is INVALID_ARGUMENT on ``<field>.<path>``."""
    extra = {"event": "Custom Thing"} if call_type is CallType.TRACK else {}
    with pytest.raises(InvalidEvent) as error:
        to_call(call_type, request_type(**BASE, **extra, **{json_field: raw}), Region.US, 0.0)
    assert [v.field for v in error.value.violations] == [f"{json_field}.{path}"]
    assert "send each key once" in error.value.violations[0].description


def test_every_field_with_a_repeat_is_named_at_once() -> None:
    """Two fields with repeats are both reported in one refusal."""
    request = pb.TrackRequest(**BASE, event="E", properties_json=b'{"a":1,"a":2}', context_json=b'{"ip":"1","ip":"2"}')
    with pytest.raises(InvalidEvent) as error:
        to_call(CallType.TRACK, request, Region.US, 0.0)
    assert [v.field for v in error.value.violations] == ["properties_json.a", "context_json.ip"]


def _strict(raw: bytes) -> Any:
    """Parse refusing any repeated key, as a parser that keeps the first value would disagree otherwise."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        assert len(keys) == len(set(keys)), keys
        return dict(pairs)

    return json.loads(raw, object_pairs_hook=hook, parse_int=_number)


def _number(text: str) -> int | float:
    """An integer as orjson (and JavaScript, which Segment runs) reads it: beyond 64 bits, a double."""
    value = int(text)
    return value if -(2**63) <= value < 2**64 else float(text)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"revenue":10,"currency":"USD"}',
        b'{"url":"https://example.com:8443/","nested":{"a":{"a":1}},"list":[{"a":1},{"a":2}]}',
        b'{"colon":"\\u003a","quote":"\\"a\\":1","big":123456789012345678901234567890,"uni":"\\u00e9"}',
    ],
)
def test_the_bytes_sent_are_the_object_checked(raw: bytes) -> None:
    """What is spooled holds the caller's bytes; read back by a strict parser they are the object the checks saw
    (an integer beyond 64 bits is a double to both, as it is to Segment)."""
    call = to_call(CallType.TRACK, pb.TrackRequest(**BASE, event="Custom Thing", properties_json=raw), Region.US, 0.0)
    event = Enricher("partner", "1.0")(call, [])
    sent = _strict(event.payload)["properties"]
    assert sent == call.parsed["properties"]
    assert sent == orjson.loads(raw)
