"""Events encoded straight to Batch entry bytes (``_wire``) against the message path they replace: pure, no server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from typing import Any

import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.internal import encoder as protobuf_encoder

from segment_sidecar_client import Alias, Event, Group, Identify, Page, Region, Screen, Track, to_struct
from segment_sidecar_client._events import to_batch_event, to_request
from segment_sidecar_client._proto import sidecar_pb2
from segment_sidecar_client._wire import Encoder, _own_fields, entry_of, varint


@dataclasses.dataclass
class Opened:
    """A typed properties object."""

    email_id: str
    at: dt.date


COMMON: dict[str, Any] = {
    "user_id": "user-1",
    "anonymous_id": "anon-é",  # not ASCII: strings travel as UTF-8
    "message_id": "m-1",
    "timestamp": dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc),
    "context": {"ip": "203.0.113.7", "nested": {"list": [1, 2.5, None, True]}},
    "integrations": {"All": False, "Mixpanel": True},
}
EVERY_FIELD: list[Event] = [
    Track(**COMMON, event="Email Opened", properties={"count": 3, "subject": "x" * 300}),
    Identify(**COMMON, traits={"plan": "pro", "seats": 2}),
    Page(**COMMON, name="Pricing", category="Docs", properties={"path": "/pricing"}),
    Screen(**COMMON, name="Home", properties={"tab": 1}),
    Group(**COMMON, group_id="g-1", traits={"employees": 12}),
    Alias(**COMMON, previous_id="anon-1"),
]
"""One event of each call type with every field set (JSON objects)."""
MINIMAL: list[Event] = [
    Track(user_id="u", event="E", message_id="m"),
    Identify(anonymous_id="a", message_id="m"),
    Page(user_id="u", message_id="m"),
    Screen(user_id="u", message_id="m"),
    Group(user_id="u", group_id="g", message_id="m"),
    Alias(user_id="u", previous_id="p", message_id="m"),
]
"""One event of each call type with only what it needs."""


def old_path(event: Event, write_key: str | None, region: Region | str | None) -> sidecar_pb2.BatchEvent:
    """The message the client built for a batched event before: ``to_request`` wrapped in its ``BatchEvent``."""
    return to_batch_event(to_request(event, write_key, region))


def decoded(entries: list[bytes]) -> sidecar_pb2.BatchRequest:
    """The BatchRequest a server parses from concatenated entries."""
    return sidecar_pb2.BatchRequest.FromString(b"".join(entries))


def assert_same_message(got: Any, want: Any) -> None:
    """Field by field (presence included), then as a whole."""
    assert [(field.name, value) for field, value in got.ListFields()] == [
        (field.name, value) for field, value in want.ListFields()
    ]
    assert got == want


@pytest.mark.parametrize("event", EVERY_FIELD + MINIMAL, ids=lambda e: type(e).__name__)
def test_each_call_type_encodes_to_the_bytes_of_the_old_path(event: Event) -> None:
    """For every call type, with every field or with the fewest, the entry is what the message path serialised."""
    message_id, entry = Encoder().encode(event, "wk", "eu")
    want = old_path(event, "wk", "eu")
    assert message_id == event.message_id
    got = decoded([entry]).events[0]
    assert_same_message(getattr(got, got.WhichOneof("event")), getattr(want, want.WhichOneof("event")))
    assert entry == sidecar_pb2.BatchRequest(events=[want]).SerializeToString()


@pytest.mark.parametrize(
    "event",
    [
        Track(user_id="u", event="E", message_id="m", properties=to_struct({"a": 1, "b": "two"})),
        Identify(user_id="u", message_id="m", traits=to_struct({}), context=to_struct({"ip": "x"})),
        Group(user_id="u", group_id="g", message_id="m", traits=to_struct({"n": 1}), integrations=to_struct({})),
        Page(user_id="u", message_id="m", properties=Opened("e-1", dt.date(2026, 1, 2))),
        Track(user_id="u", event="E", message_id="m", properties={}, context={}),
        Screen(user_id="u", message_id="m", name="S", timestamp="2026-01-02T03:04:05.5Z"),
        Alias(user_id="u", previous_id="p", message_id="m", timestamp=timestamp_pb2.Timestamp()),
        Track(user_id="u", event="E", message_id="m", timestamp=dt.datetime(1960, 1, 1)),
        Track(user_id="u", event="E", message_id="m", properties={1: "integer key"}),
    ],
    ids=[
        "struct",
        "empty-struct",
        "struct-integrations",
        "dataclass",
        "empty-dicts",
        "timestamp-string",
        "timestamp-epoch",
        "timestamp-before-1970",
        "non-string-key",
    ],
)
def test_structs_dataclasses_timestamps_and_empty_objects_decode_the_same(event: Event) -> None:
    """Struct fields, dataclass objects, empty objects and every timestamp form decode to the old path's message."""
    _, entry = Encoder().encode(event, "wk", None)
    want = old_path(event, "wk", None)
    got = decoded([entry]).events[0]
    assert_same_message(getattr(got, got.WhichOneof("event")), getattr(want, want.WhichOneof("event")))


def test_a_batch_is_the_concatenation_of_its_entries() -> None:
    """Entries of mixed types, joined, are the serialised BatchRequest of the old path's messages, in order."""
    encoder = Encoder()
    entries = [encoder.encode(event, "wk", None)[1] for event in EVERY_FIELD + MINIMAL]
    want = sidecar_pb2.BatchRequest(events=[old_path(event, "wk", None) for event in EVERY_FIELD + MINIMAL])
    assert decoded(entries) == want
    assert b"".join(entries) == want.SerializeToString()


def test_a_prepared_request_has_the_same_entry() -> None:
    """``entry_of`` (for ``batch_requests``) gives the encoder's bytes for the same event."""
    for event in EVERY_FIELD:
        assert entry_of(to_request(event, "wk", "us")) == Encoder().encode(event, "wk", "us")[1]


def test_event_write_key_and_region_win_and_heads_do_not_mix() -> None:
    """An event's own write key and region win over the defaults; alternating keys each keep their own."""
    encoder = Encoder()
    for _ in range(3):
        for event, key, region in [
            (Track(user_id="u", event="E"), "default", sidecar_pb2.REGION_UNSPECIFIED),
            (Track(user_id="u", event="E", write_key="own"), "own", sidecar_pb2.REGION_UNSPECIFIED),
            (Track(user_id="u", event="E", region="eu"), "default", sidecar_pb2.REGION_EU),
            (Track(user_id="u", event="E", write_key="own", region=Region.US), "own", sidecar_pb2.REGION_US),
        ]:
            track = decoded([encoder.encode(event, "default", None)[1]]).events[0].track
            assert (track.write_key, track.region) == (key, region)


def test_threads_sharing_an_encoder_keep_their_write_keys() -> None:
    """Several threads encoding for different write keys with one encoder never get another thread's key."""
    encoder = Encoder()
    wrong: list[str] = []

    def produce(key: str) -> None:
        for _ in range(2000):
            if decoded([encoder.encode(Track(user_id="u", event="E"), key, None)[1]]).events[0].track.write_key != key:
                wrong.append(key)

    threads = [threading.Thread(target=produce, args=(f"key-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_new_message_ids_are_made_and_returned() -> None:
    """An event without a message id gets a fresh one, returned with its entry and written in it."""
    encoder = Encoder()
    first, entry = encoder.encode(Track(user_id="u", event="E"), "wk", None)
    second, _ = encoder.encode(Track(user_id="u", event="E"), "wk", None)
    assert first != second
    assert decoded([entry]).events[0].track.message_id == first


@pytest.mark.parametrize(
    ("event", "write_key", "error", "match"),
    [
        (Track(user_id="u", event="E"), None, ValueError, "write_key"),
        (Track(user_id="u", event="E"), "", ValueError, "write_key"),
        (Track(user_id="u", event="E", region="apac"), "wk", ValueError, "unknown region"),
        (Track(user_id="u", event="E", properties={"bad": object()}), "wk", TypeError, "not JSON serializable"),
        (Track(user_id="u", event="E", properties=["not", "an", "object"]), "wk", TypeError, "expected a dict"),
        (Track(user_id=12, event="E"), "wk", TypeError, "string"),  # type: ignore[arg-type]
    ],
    ids=["no-key", "empty-key", "region", "not-json", "not-an-object", "not-a-string"],
)
def test_unsendable_events_raise_like_the_old_path(
    event: Event, write_key: str | None, error: type[Exception], match: str
) -> None:
    """An event that cannot be sent raises the same kind of error as ``to_request`` did, at once."""
    with pytest.raises(error, match=match):
        Encoder().encode(event, write_key, None)
    with pytest.raises(error):
        to_request(dataclasses.replace(event, message_id="m"), write_key, None)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 2**21, 2**35, 2**63])
def test_varint_is_protobufs(value: int) -> None:
    """Lengths are written as protobuf's own encoder writes them, at every size boundary."""
    assert varint(value) == protobuf_encoder._VarintBytes(value)


def test_layouts_skip_fields_the_event_lacks_and_refuse_unknown_types() -> None:
    """A proto field the Python event does not have is left out; a field of a type with no encoding fails early."""

    @dataclasses.dataclass
    class OnlyProperties:
        properties: Any = None

    assert [name for name, *_ in _own_fields(OnlyProperties, sidecar_pb2.TrackRequest)] == ["properties"]

    @dataclasses.dataclass
    class WithANumber:
        segment_status: int = 0

    with pytest.raises(TypeError, match="segment_status"):
        _own_fields(WithANumber, sidecar_pb2.Outcome)
