"""Contexts and integrations sent as the same JSON bytes call after call are parsed and checked once: the memo gives
the same verdict as a fresh parse, never remembers a refusal, and stays bounded."""

from __future__ import annotations

import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar.api import convert
from sidecar.api.convert import MAX_REMEMBERED_BYTES, MAX_REMEMBERED_OBJECTS, to_call
from sidecar.errors import InvalidEvent
from sidecar.model import Call, CallType, Region

CONTEXT = b'{"app":{"name":"shop","version":"1.2"},"ip":"10.0.0.1"}'


def track(**fields: object) -> Call:
    """A decoded track call with the given request fields."""
    request = pb.TrackRequest(write_key="wk", user_id="u1", event="Order Completed", **fields)  # type: ignore[arg-type]
    return to_call(CallType.TRACK, request, Region.US, 0.0)


def test_a_repeated_context_is_parsed_once_and_carried_as_its_bytes() -> None:
    """The second call with the same context bytes shares the first one's parsed object; both carry the bytes."""
    first, second = track(context_json=CONTEXT), track(context_json=CONTEXT)
    assert first.parsed["context"] == {"app": {"name": "shop", "version": "1.2"}, "ip": "10.0.0.1"}
    assert second.parsed["context"] is first.parsed["context"]
    assert first.context_json == second.context_json == CONTEXT


def test_a_context_sent_as_a_struct_carries_no_bytes() -> None:
    """Only JSON bytes are remembered: a Struct context is converted on every call and ``context_json`` is empty."""
    request = pb.TrackRequest(write_key="wk", user_id="u1", event="E")
    request.context.update({"ip": "10.0.0.1"})
    call = to_call(CallType.TRACK, request, Region.US, 0.0)
    assert call.parsed["context"] == {"ip": "10.0.0.1"} and call.context_json == b""


@pytest.mark.parametrize("field", ["context_json", "integrations_json"])
def test_refused_bytes_are_refused_every_time(field: str) -> None:
    """A repeated key, or a text that is not an object, is refused on each call with the same field, not remembered."""
    for raw, named in ((b'{"ip":"a","ip":"b"}', f"{field}.ip"), (b"[1,2]", field)):
        for _ in range(2):
            with pytest.raises(InvalidEvent) as error:
                track(**{field: raw})
            assert [v.field for v in error.value.violations] == [named]


def test_the_memo_is_bounded_in_entries_and_text_size() -> None:
    """More distinct contexts than the memo holds keep it at its bound; a long context is never remembered."""
    for index in range(MAX_REMEMBERED_OBJECTS + 10):
        track(context_json=b'{"n":%d}' % index)
        assert len(convert._checked) <= MAX_REMEMBERED_OBJECTS
    long = b'{"a":"' + b"x" * MAX_REMEMBERED_BYTES + b'"}'
    first, second = track(context_json=long), track(context_json=long)
    assert first.parsed["context"] == second.parsed["context"]
    assert first.parsed["context"] is not second.parsed["context"]
