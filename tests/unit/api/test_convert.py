"""Decoding requests: every limit is checked on the raw request before anything is parsed, and Structs are checked
for values JSON cannot carry."""

from __future__ import annotations

import time

import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.message import DecodeError

from sidecar._proto import sidecar_pb2 as pb
from sidecar.api.convert import struct_to_dict, to_call
from sidecar.errors import InvalidEvent
from sidecar.model import CallType, Region
from sidecar.validate.limits import MAX_JSON_DEPTH, MAX_STRING_CHARS
from tests.support.wire import deep_properties

BASE = {"write_key": "wk", "user_id": "u1"}


def fields_of(error: pytest.ExceptionInfo[InvalidEvent]) -> list[str]:
    """The fields an InvalidEvent names."""
    return [v.field for v in error.value.violations]


def decode(call_type: CallType, request: object) -> object:
    """to_call with the defaults."""
    return to_call(call_type, request, Region.US, 0.0)


@pytest.mark.parametrize(
    ("call_type", "request_type", "field"),
    [
        (CallType.TRACK, pb.TrackRequest, "event"),
        (CallType.TRACK, pb.TrackRequest, "write_key"),
        (CallType.TRACK, pb.TrackRequest, "user_id"),
        (CallType.TRACK, pb.TrackRequest, "anonymous_id"),
        (CallType.PAGE, pb.PageRequest, "name"),
        (CallType.PAGE, pb.PageRequest, "category"),
        (CallType.SCREEN, pb.ScreenRequest, "name"),
        (CallType.GROUP, pb.GroupRequest, "group_id"),
        (CallType.ALIAS, pb.AliasRequest, "previous_id"),
    ],
)
def test_every_string_field_has_a_length_limit(call_type: CallType, request_type: type, field: str) -> None:
    """A string of the limit is decoded; one character more is INVALID_ARGUMENT naming that field."""
    ok = request_type(**{**BASE, field: "x" * MAX_STRING_CHARS})
    decode(call_type, ok)
    with pytest.raises(InvalidEvent) as error:
        decode(call_type, request_type(**{**BASE, field: "x" * (MAX_STRING_CHARS + 1)}))
    assert fields_of(error) == [field]


def test_message_id_of_100_characters_is_refused_before_anything_else() -> None:
    """Segment's message id limit is checked with the other lengths."""
    with pytest.raises(InvalidEvent) as error:
        decode(CallType.TRACK, pb.TrackRequest(**BASE, event="E", message_id="m" * 100))
    assert fields_of(error) == ["message_id"]


def test_an_8_mib_name_is_refused_in_milliseconds() -> None:
    """The name's length is checked before the Spec check or any copy into the event (13.7: 3.9 s on main)."""
    request = pb.TrackRequest(**BASE, event="x" * (8 * 2**20))
    started = time.perf_counter()
    with pytest.raises(InvalidEvent):
        decode(CallType.TRACK, request)
    assert time.perf_counter() - started < 0.1


@pytest.mark.parametrize("json_field", ["properties_json", "context_json", "integrations_json"])
def test_json_fields_over_32_kib_or_too_deep_are_refused_unparsed(json_field: str) -> None:
    """A 12 MiB JSON field is refused by its size, a 300-deep one by its depth, each naming the field."""
    request = pb.TrackRequest(**BASE, event="E", **{json_field: b'{"a":"' + b"x" * (12 * 2**20) + b'"}'})
    started = time.perf_counter()
    with pytest.raises(InvalidEvent) as error:
        decode(CallType.TRACK, request)
    assert time.perf_counter() - started < 0.1
    assert fields_of(error) == [json_field]
    deep = b'{"a":' * 300 + b"1" + b"}" * 300
    with pytest.raises(InvalidEvent) as error:
        decode(CallType.TRACK, pb.TrackRequest(**BASE, event="E", **{json_field: deep}))
    assert fields_of(error) == [json_field]


def test_traits_json_has_the_same_limits() -> None:
    """identify's traits_json is bounded like properties_json."""
    with pytest.raises(InvalidEvent) as error:
        decode(CallType.IDENTIFY, pb.IdentifyRequest(**BASE, traits_json=b"[" * 100 + b"]" * 100))
    assert fields_of(error) == ["traits_json"]


def deep_struct(depth: int) -> struct_pb2.Struct:
    """A Struct nesting ``depth`` levels."""
    inner: dict[str, object] = {"leaf": 1}
    for _ in range(depth - 1):
        inner = {"a": inner}
    result = struct_pb2.Struct()
    result.update(inner)
    return result


def test_structs_nest_no_deeper_than_protobuf_decodes() -> None:
    """A Struct level costs protobuf three nested messages, so its decoder (100 messages) refuses a Struct deeper than
    about 33 levels before the sidecar sees it (the server answers INVALID_ARGUMENT: see test_hostile_input); 30
    levels decode and convert."""
    call = decode(CallType.TRACK, pb.TrackRequest(**BASE, event="E", properties=deep_struct(30)))
    assert call is not None
    with pytest.raises(DecodeError):
        pb.TrackRequest.FromString(pb.TrackRequest(**BASE, event="E").SerializeToString() + deep_properties(40))
    assert MAX_JSON_DEPTH > 33


def test_large_structs_are_refused_by_their_encoded_size() -> None:
    """A Struct of 1 MiB is refused on its field before it is converted."""
    big = struct_pb2.Struct()
    big.update({"a": "x" * 2**20})
    with pytest.raises(InvalidEvent) as error:
        decode(CallType.IDENTIFY, pb.IdentifyRequest(**BASE, traits=big))
    assert fields_of(error) == ["traits"]


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_in_a_struct_are_invalid(number: float) -> None:
    """NaN and Infinity, at the top or nested in a list, are INVALID_ARGUMENT naming their path, never sent as null
    (13.6)."""
    cases = [
        ({"revenue": number}, "properties.revenue"),
        ({"items": [{"sku": "a"}, {"price": number}]}, "properties.items[1].price"),
    ]
    for value, path in cases:
        struct = struct_pb2.Struct()
        struct.update(value)
        with pytest.raises(InvalidEvent) as error:
            decode(CallType.TRACK, pb.TrackRequest(**BASE, event="E", properties=struct))
        assert fields_of(error) == [path]


def test_struct_to_dict_keeps_whole_numbers_as_ints() -> None:
    """The conversion still turns whole doubles into ints and keeps the others."""
    struct = struct_pb2.Struct()
    struct.update({"n": 3, "r": 0.5, "l": [1, "a", None, True]})
    assert struct_to_dict(struct) == {"n": 3, "r": 0.5, "l": [1, "a", None, True]}


@pytest.mark.parametrize(
    ("seconds", "nanos"), [(10**17, 0), (-62_135_596_800, 0), (1_700_000_000, -1), (1_700_000_000, 10**9)]
)
def test_timestamps_out_of_range_are_invalid(seconds: int, nanos: int) -> None:
    """Out-of-range seconds or nanos are INVALID_ARGUMENT on ``timestamp`` (13.3), not an error deeper in."""
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    with pytest.raises(InvalidEvent) as error:
        decode(CallType.TRACK, pb.TrackRequest(**BASE, event="E", timestamp=stamp))
    assert fields_of(error) == ["timestamp"]


def test_every_violation_is_reported_at_once() -> None:
    """A request over several limits names each field."""
    request = pb.TrackRequest(
        write_key="k" * 5000,
        user_id="u",
        event="e" * 5000,
        properties_json=b"[" * 100 + b"]" * 100,
        timestamp=timestamp_pb2.Timestamp(seconds=-5),
    )
    with pytest.raises(InvalidEvent) as error:
        decode(CallType.TRACK, request)
    assert sorted(fields_of(error)) == ["event", "properties_json", "timestamp", "write_key"]
