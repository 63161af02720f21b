"""Turning typed events into request messages, and the retry arithmetic: pure code, no server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import grpc
import pytest

from segment_sidecar_client import Identify, Region, RetryPolicy, SidecarError, Track, resolve_address, to_struct
from segment_sidecar_client._events import to_batch_event, to_request, with_message_id
from segment_sidecar_client._retry import Attempts


def test_dict_properties_are_sent_as_json_bytes_with_integers_kept() -> None:
    """A dict becomes the ``properties_json`` bytes of the same JSON object; the Struct field stays empty."""
    event = with_message_id(
        Track(user_id="u", event="Email Opened", properties={"count": 3, "nested": {"a": [1, 2.5]}})
    )
    request = to_request(event, "wk", None)
    assert json.loads(request.properties_json) == {"count": 3, "nested": {"a": [1, 2.5]}}
    assert not request.HasField("properties")
    assert request.write_key == "wk"
    assert request.region == 0  # REGION_UNSPECIFIED: the sidecar's default region


def test_struct_properties_are_sent_as_struct() -> None:
    """A Struct made with ``to_struct`` goes into the Struct field and no JSON bytes are sent."""
    event = with_message_id(Identify(user_id="u", traits=to_struct({"plan": "pro", "seats": 2})))
    request = to_request(event, "wk", "eu")
    assert request.traits["plan"] == "pro"
    assert request.traits["seats"] == 2.0
    assert request.traits_json == b""
    assert request.region == 2


def test_dataclass_properties_are_sent_as_json() -> None:
    """A dataclass instance is a typed alternative to a dict, with dates written as ISO 8601."""

    @dataclasses.dataclass
    class Opened:
        email_id: str
        at: dt.date

    request = to_request(
        with_message_id(Track(user_id="u", event="E", properties=Opened("e-1", dt.date(2026, 1, 2)))), "wk", None
    )
    assert json.loads(request.properties_json) == {"email_id": "e-1", "at": "2026-01-02"}


def test_message_id_is_made_once_and_kept() -> None:
    """An event without a message id gets a UUID (a UUIDv7); one with an id keeps it."""
    made = with_message_id(Track(user_id="u", event="E"))
    assert len(made.message_id) == 36
    assert with_message_id(made) is made
    assert with_message_id(Track(user_id="u", event="E", message_id="mine")).message_id == "mine"


def test_event_fields_override_client_defaults() -> None:
    """A write key and region on the event win over the client's defaults; timestamps accept strings and datetimes."""
    event = with_message_id(
        Track(user_id="u", event="E", write_key="own", region=Region.US, timestamp="2026-01-02T03:04:05Z")
    )
    request = to_request(event, "default", "eu")
    assert (request.write_key, request.region) == ("own", 1)
    assert request.timestamp.seconds == int(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc).timestamp())
    naive = to_request(with_message_id(Track(user_id="u", event="E", timestamp=dt.datetime(2026, 1, 2))), "wk", None)
    assert naive.timestamp.seconds == int(dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc).timestamp())


def test_missing_write_key_is_refused_before_sending() -> None:
    """Without a write key on the event or the client, building the request fails at once."""
    with pytest.raises(ValueError, match="write_key"):
        to_request(with_message_id(Track(user_id="u", event="E")), None, None)


def test_batch_event_wraps_each_type() -> None:
    """Each request lands in the matching member of the BatchEvent oneof."""
    request = to_request(with_message_id(Identify(user_id="u")), "wk", None)
    assert to_batch_event(request).WhichOneof("event") == "identify"


def test_region_parsing() -> None:
    """Regions are accepted in either case, with or without the enum prefix; unknown ones are refused."""
    assert Region.parse("us") is Region.US
    assert Region.parse("REGION_EU") is Region.EU
    assert Region.parse(None) is Region.UNSPECIFIED
    with pytest.raises(ValueError, match="unknown region"):
        Region.parse("apac")


def test_address_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The address is the argument, else SIDECAR_ADDRESS, else 127.0.0.1:50051."""
    monkeypatch.delenv("SIDECAR_ADDRESS", raising=False)
    assert resolve_address() == "127.0.0.1:50051"
    monkeypatch.setenv("SIDECAR_ADDRESS", "unix:/run/sidecar.sock")
    assert resolve_address() == "unix:/run/sidecar.sock"
    assert resolve_address("10.0.0.1:9") == "10.0.0.1:9"


def test_retry_wait_honours_retry_info_and_the_deadline() -> None:
    """The wait is at least the server's RetryInfo, and no wait is planned past the deadline."""
    attempts = Attempts(RetryPolicy(initial_backoff=0.01), timeout=5.0)
    attempts.start()
    exhausted = SidecarError(grpc.StatusCode.RESOURCE_EXHAUSTED, "full", retry_after=1.5)
    assert attempts.wait_before_next(exhausted) == 1.5
    too_long = SidecarError(grpc.StatusCode.RESOURCE_EXHAUSTED, "full", retry_after=10.0)
    assert attempts.wait_before_next(too_long) is None
    assert attempts.wait_before_next(SidecarError(grpc.StatusCode.INVALID_ARGUMENT, "bad")) is None
    unavailable = SidecarError(grpc.StatusCode.UNAVAILABLE, "down")
    wait = attempts.wait_before_next(unavailable)
    assert wait is not None
    assert 0 <= wait <= 0.01


def test_backoff_grows_and_is_capped() -> None:
    """Backoff bounds double per attempt up to max_backoff."""
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=0.4)
    for attempt, bound in [(1, 0.1), (2, 0.2), (3, 0.4), (6, 0.4)]:
        assert all(0 <= policy.backoff(attempt) <= bound for _ in range(50))
