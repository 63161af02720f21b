"""Decoding a Batch's events together (``batch_calls``) gives, event for event and in order, what decoding each on
its own (``to_call``) gives: the same Call, or the same refusal."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar.api import convert
from sidecar.api.convert import DECODE_RUN, batch_calls, to_call
from sidecar.errors import InvalidEvent
from sidecar.model import Call, CallType, Region
from sidecar.validate import limits
from sidecar.validate.limits import MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_STRING_CHARS

BASE = {"write_key": "wk", "user_id": "u1"}
PROPERTIES = orjson.dumps({"email_id": "em_1", "subject": "Spring sale", "opened_at": "10:30"})


def one_by_one(events: list[pb.BatchEvent]) -> list[Any]:
    """Each event decoded alone, as the Batch handler did before: a Call, an InvalidEvent, or None (no call set)."""
    decoded: list[Any] = []
    for item in events:
        kind = item.WhichOneof("event")
        if kind is None:
            decoded.append(None)
            continue
        try:
            decoded.append(to_call(CallType(kind), getattr(item, kind), Region.EU, 12.5))
        except InvalidEvent as refusal:
            decoded.append(refusal)
    return decoded


def together(events: list[pb.BatchEvent]) -> list[Any]:
    """The same events through batch_calls."""
    return [call for _, _, call in batch_calls(events, Region.EU, 12.5)]


def same(left: Any, right: Any) -> bool:
    """Equal Calls (JSON bytes compared as bytes), or refusals with the same message and violations."""
    if isinstance(left, InvalidEvent) or isinstance(right, InvalidEvent):
        return type(left) is type(right) and str(left) == str(right) and left.violations == right.violations
    if isinstance(left, Call) and isinstance(right, Call):
        # The fields as the JSON they embed (Fragments compare by identity).
        return orjson.dumps(left.fields) == orjson.dumps(right.fields) and (
            left.type,
            left.write_key,
            left.region,
            left.parsed,
            left.received_at,
            left.context_json,
        ) == (right.type, right.write_key, right.region, right.parsed, right.received_at, right.context_json)
    return left is None and right is None


def track(index: int, **extra: Any) -> pb.BatchEvent:
    """A track event with its own user id and message id."""
    fields = {**BASE, "user_id": f"user-{index}", "event": "Email Opened", "message_id": f"m-{index}"}
    return pb.BatchEvent(track=pb.TrackRequest(**{**fields, "properties_json": PROPERTIES, **extra}))


def test_a_mixed_batch_decodes_in_order_as_each_event_alone() -> None:
    """Runs of several call types, an event with no call set, runs longer than DECODE_RUN, and refusals of every kind
    (a limit, bad JSON, a repeated key, an unknown region, a Struct beside its JSON bytes) land at their own index."""
    events = [track(n) for n in range(DECODE_RUN + 10)]
    events[3] = track(3, event="x" * (MAX_STRING_CHARS + 1))
    events[7] = track(7, properties_json=b"{not json")
    events[11] = track(11, properties_json=b'{"a": 1, "a": 2}')
    events[12] = track(12, properties_json=b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1))
    events[13] = track(13, region=7)  # type: ignore[arg-type]
    events[14] = pb.BatchEvent()
    events[15] = track(15, context_json=b'{"ip": "10.0.0.1"}')
    events.insert(20, pb.BatchEvent(identify=pb.IdentifyRequest(**BASE, traits_json=b'{"plan": "pro"}')))
    events.insert(21, pb.BatchEvent(alias=pb.AliasRequest(**BASE, previous_id="old-1")))
    events.insert(22, pb.BatchEvent(page=pb.PageRequest(**BASE, name="Home", category="Docs")))
    struct_and_bytes = track(30, properties_json=b'{"a": 1}')
    struct_and_bytes.track.properties["a"] = 1
    events.append(struct_and_bytes)
    events.append(pb.BatchEvent(group=pb.GroupRequest(**BASE, group_id="g-1")))

    alone, batched = one_by_one(events), together(events)

    assert len(batched) == len(events)
    mismatched = [index for index, (a, b) in enumerate(zip(alone, batched, strict=True)) if not same(a, b)]
    assert mismatched == []
    refused = [index for index, call in enumerate(batched) if isinstance(call, InvalidEvent)]
    assert refused == [3, 7, 11, 12, 13, len(events) - 2]
    assert [batched[index].violations[0].field for index in refused] == [
        "event",
        "properties_json",
        "properties_json.a",
        "properties_json",
        "region",
        "properties",
    ]
    assert "deeper" in str(batched[12])
    assert batched[14] is None
    assert isinstance(batched[15], Call) and batched[15].context_json == b'{"ip": "10.0.0.1"}'


def test_the_call_types_and_requests_come_with_each_call() -> None:
    """Each decoded event names its call type and hands back its own request (what observers report a refusal on)."""
    events = [track(0), pb.BatchEvent(identify=pb.IdentifyRequest(**BASE)), pb.BatchEvent(), track(1)]
    decoded = list(batch_calls(events, Region.US, 0.0))
    assert [kind for kind, _, _ in decoded] == [CallType.TRACK, CallType.IDENTIFY, None, CallType.TRACK]
    assert [request.user_id if request is not None else None for _, request, _ in decoded] == [
        "user-0",
        "u1",
        None,
        "user-1",
    ]


@pytest.mark.parametrize("at", [0, DECODE_RUN - 1, DECODE_RUN])
def test_one_oversized_value_refuses_only_its_own_event(at: int) -> None:
    """A value over its limit anywhere in a run sends that run to the exact check: the others are still decoded."""
    events = [track(n) for n in range(DECODE_RUN + 5)]
    events[at] = track(at, properties_json=b'{"k": "' + b"v" * 40_000 + b'"}')
    decoded = together(events)
    assert [index for index, call in enumerate(decoded) if not isinstance(call, Call)] == [at]
    assert "properties_json" in str(decoded[at])


def _nested(depth: int, bracket: bytes = b"{") -> bytes:
    """A JSON object whose brackets nest ``depth`` deep (objects, or an object holding arrays)."""
    if bracket == b"{":
        return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)
    return b'{"a":' + b"[" * (depth - 1) + b"1" + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"event": "e" * limits._MIN_STRING_LIMIT},
        {"event": "e" * (limits._MIN_STRING_LIMIT + 1)},
        {"user_id": "u" * (MAX_STRING_CHARS + 1)},
        {"message_id": "m" * (limits._MIN_STRING_LIMIT + 1)},
        {"properties_json": b'{"k": "' + b"v" * (MAX_JSON_BYTES - 9) + b'"}'},
        {"properties_json": b'{"k": "' + b"v" * (MAX_JSON_BYTES - 8) + b'"}'},
        {"properties_json": _nested(MAX_JSON_DEPTH)},
        {"properties_json": _nested(MAX_JSON_DEPTH + 1)},
        {"context_json": _nested(MAX_JSON_DEPTH + 1, b"[")},
        {"integrations_json": b'{"All": false, "x": "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"}'},
    ],
    ids=lambda extra: ",".join(f"{k}:{len(v)}" for k, v in extra.items()) or "plain",
)
def test_one_request_read_along_its_row_passes_the_limits_shortcut_as_a_column_does(extra: dict[str, Any]) -> None:
    """A request decoded alone (a unary call, or one a Batch's shortcut did not settle) takes the row-wise form of
    the limits shortcut: it lets through exactly what the columnar form lets through, and what it sends on to the
    exact check is refused or accepted there as when the request came in a Batch."""
    request = track(0, **extra).track
    plan = convert._PLANS[CallType.TRACK]
    values = plan.read(request)
    assert convert._row_within_limits(plan, values) is convert._within_limits(plan, [values])
    assert same(one_by_one([track(0, **extra)])[0], together([track(0, **extra), track(1)])[0])


@pytest.mark.parametrize("decode", ["alone", "in a batch"])
def test_a_refusal_holds_no_copy_of_the_values_it_refused(decode: str) -> None:
    """The refusal of an oversized request carries no frame holding the values read from it: a reference cycle
    through its traceback would keep those copies (up to 16 MiB a call) alive until the collector runs."""
    huge = "x" * (MAX_STRING_CHARS * 64)
    event = track(0, event=huge)
    if decode == "alone":
        with pytest.raises(InvalidEvent) as caught:
            to_call(CallType.TRACK, event.track, Region.US, 0.0)
        refusal = caught.value
    else:
        refusal = together([event])[0]
        assert isinstance(refusal, InvalidEvent)
    frames = []  # the sidecar's own frames (the test's frame holds ``huge`` itself)
    trace = refusal.__traceback__
    while trace is not None:
        if convert.__file__ == trace.tb_frame.f_code.co_filename:
            frames.append(trace.tb_frame)
        trace = trace.tb_next
    holding = [
        (frame.f_code.co_name, name)
        for frame in frames
        for name, value in frame.f_locals.items()
        if value is not event.track and huge in (value if isinstance(value, tuple) else (value,))
    ]
    assert holding == []
