"""Proto requests -> :class:`~sidecar.model.Call`: decode once, at the edge, into Segment's JSON field names.

JSON objects arrive either as ``google.protobuf.Struct`` or as the raw bytes of a JSON object (``*_json``). Raw bytes
are parsed once (orjson) to check them and to feed the Spec checker, and are then embedded in the outgoing event as an
``orjson.Fragment``, so the caller's JSON is never re-encoded. That is sound because the bytes hold exactly the object
that was checked: orjson refuses invalid UTF-8, lone surrogates, NaN and numbers beyond a double (and reads an integer
beyond 64 bits as a double, as Segment's JavaScript does), and a key repeated in any object is refused
(:mod:`sidecar.validate.json_keys`), so no parser can read other values from them. A Struct holds every number as a
double; whole numbers are turned back into integers here, since Segment (and its destinations) must see ``3``,
not ``3.0``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator, Sequence
from itertools import chain, groupby, repeat
from typing import Any

import orjson
from google.protobuf import struct_pb2, timestamp_pb2

from sidecar._proto import sidecar_pb2 as pb
from sidecar.config import SEGMENT_MAX_MESSAGE_ID_CHARS
from sidecar.errors import FieldViolation, InvalidEvent
from sidecar.model import Call, CallType, Region
from sidecar.validate.json_keys import check_duplicate_keys
from sidecar.validate.limits import (
    MAX_JSON_DEPTH,
    MAX_STRING_CHARS,
    check_json_bytes,
    check_string,
    check_struct_size,
    check_timestamp,
    columns_far_inside_limits,
    row_far_inside_limits,
)

_REGIONS = {pb.REGION_US: Region.US, pb.REGION_EU: Region.EU}

# Per call type, in Segment's field order (what happened, identity, objects), so that the enricher can copy a Call's
# fields into the event in one step: string fields sent before the ids, those after them, then the JSON objects as
# (Struct field, JSON bytes field). Precomputed so that the per-event path does no string concatenation.
_LEADING: dict[CallType, tuple[tuple[str, str], ...]] = {
    CallType.TRACK: (("event", "event"),),
    CallType.IDENTIFY: (),
    CallType.PAGE: (("name", "name"), ("category", "category")),
    CallType.SCREEN: (("name", "name"),),
    CallType.GROUP: (),
    CallType.ALIAS: (),
}
_TRAILING: dict[CallType, tuple[tuple[str, str], ...]] = {
    CallType.GROUP: (("group_id", "groupId"),),
    CallType.ALIAS: (("previous_id", "previousId"),),
}
_COMMON_OBJECTS = (("context", "context_json"), ("integrations", "integrations_json"))
_OBJECTS: dict[CallType, tuple[tuple[str, str], ...]] = {
    CallType.TRACK: (("properties", "properties_json"), *_COMMON_OBJECTS),
    CallType.IDENTIFY: (("traits", "traits_json"), *_COMMON_OBJECTS),
    CallType.PAGE: (("properties", "properties_json"), *_COMMON_OBJECTS),
    CallType.SCREEN: (("properties", "properties_json"), *_COMMON_OBJECTS),
    CallType.GROUP: (("traits", "traits_json"), *_COMMON_OBJECTS),
    CallType.ALIAS: _COMMON_OBJECTS,
}

ProtoRequest = Any  # one of the six generated <Name>Request classes, which share no base class but Message


class _StructProblem(Exception):
    """A Struct value JSON cannot carry (NaN, Infinity) or one nested too deep; becomes a field violation."""


def _value(value: struct_pb2.Value, depth: int) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            shown = "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
            raise _StructProblem(f"holds {shown}, which JSON cannot carry; send null or a string")
        # A Struct can only carry doubles; a whole number was an integer on the caller's side.
        return int(number) if number.is_integer() and abs(number) < 2**63 else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _struct(value.struct_value, depth + 1)
    if kind == "list_value":
        if depth + 1 > MAX_JSON_DEPTH:
            raise _StructProblem(f"nests objects and lists deeper than {MAX_JSON_DEPTH} levels")
        return [_value(item, depth + 1) for item in value.list_value.values]
    return None


def _struct(struct: struct_pb2.Struct, depth: int) -> dict[str, Any]:
    # Recursion is bounded by the depth check (and protobuf's own decoding limit of 100 nested messages).
    if depth > MAX_JSON_DEPTH:
        raise _StructProblem(f"nests objects and lists deeper than {MAX_JSON_DEPTH} levels")
    return {key: _value(item, depth) for key, item in struct.fields.items()}


def struct_to_dict(struct: struct_pb2.Struct, field: str = "struct") -> dict[str, Any]:
    """A Struct as plain JSON values, whole numbers as ints; InvalidEvent (on ``field``) for NaN, Infinity or depth
    over :data:`~sidecar.validate.limits.MAX_JSON_DEPTH`."""
    try:
        return _struct(struct, 1)
    except _StructProblem as problem:
        raise InvalidEvent.single(_path_to_non_finite(struct, field), str(problem)) from None


def _path_to_non_finite(struct: struct_pb2.Struct, field: str) -> str:
    """The path (``properties.items[0].price``) of a NaN or Infinity in the Struct, or ``field`` (depth problems).

    Walked only once a conversion has failed, so the hot path keeps its comprehension; iterative, so depth is no risk.
    """
    pending: list[tuple[str, struct_pb2.Value]] = [(f"{field}.{key}", item) for key, item in struct.fields.items()]
    while pending:
        path, value = pending.pop()
        kind = value.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(value.number_value):
            return path
        if kind == "struct_value":
            pending.extend((f"{path}.{key}", item) for key, item in value.struct_value.fields.items())
        elif kind == "list_value":
            pending.extend((f"{path}[{index}]", item) for index, item in enumerate(value.list_value.values))
    return field


def _object(request: ProtoRequest, name: str, json_name: str) -> tuple[Any, dict[str, Any]] | None:
    """The JSON object field ``name``: (value to embed, parsed dict), or None when unset."""
    raw: bytes = getattr(request, json_name)
    has_struct = request.HasField(name)
    if raw and has_struct:
        raise InvalidEvent.single(name, f"set either {name} (Struct) or {json_name} (JSON bytes), not both")
    if raw:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent.single(
                json_name, f"is not valid JSON ({exc.msg} at character {exc.pos}); NaN and Infinity are not JSON"
            ) from None
        if not isinstance(parsed, dict):
            raise InvalidEvent.single(json_name, f"must be a JSON object, not {type(parsed).__name__}")
        duplicate = check_duplicate_keys(json_name, raw, parsed)
        if duplicate is not None:
            raise InvalidEvent(f"{duplicate.field}: {duplicate.description}", (duplicate,))
        return orjson.Fragment(raw), parsed
    if has_struct:
        parsed = struct_to_dict(getattr(request, name), name)
        return parsed, parsed
    return None


def _json_object(raw: bytes, json_name: str) -> dict[str, Any] | FieldViolation | None:
    """``raw`` parsed when it is a JSON object; a violation when it repeats a key (the bytes are sent as they came, so
    they must mean one object only); None when it is anything else, for :func:`_object` to word."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    if raw.count(b":") == len(value):
        return value  # json_keys' first test, here to spare two calls: a flat object, no colon in its strings
    return check_duplicate_keys(json_name, raw, value) or value


_REPEATED = frozenset({"context", "integrations"})
"""Objects a caller usually sends byte for byte the same on every call (its app, device and library; its
destination switches), unlike properties and traits."""
MAX_REMEMBERED_OBJECTS = 1024
"""Distinct ``context``/``integrations`` texts remembered as checked, with their parsed objects."""
MAX_REMEMBERED_BYTES = 4096
"""Longer texts are checked on every call and never remembered: the memo holds at most ~4 MiB of text."""
_checked: dict[bytes, dict[str, Any]] = {}


def _repeated_object(raw: bytes, json_name: str) -> dict[str, Any] | FieldViolation | None:
    """:func:`_json_object` remembered by the bytes: the same text always parses to the same object with the same
    verdict, so text seen before is neither parsed nor checked for repeated keys again. The object handed out is
    shared between calls; nothing downstream changes a parsed object (the enricher copies the context it extends).
    Only objects are remembered (a refusal is worded afresh each time), and the memo starts over when full."""
    found = _checked.get(raw)
    if found is not None:
        return found
    value = _json_object(raw, json_name)
    if type(value) is dict and len(raw) <= MAX_REMEMBERED_BYTES:
        if len(_checked) >= MAX_REMEMBERED_OBJECTS:
            _checked.clear()
        _checked[raw] = value
    return value


def _timestamp(stamp: timestamp_pb2.Timestamp) -> tuple[int, int]:
    """(seconds, milliseconds): kept as integers, since a float would round 20.123 s down to 20.122."""
    return int(stamp.seconds), int(stamp.nanos) // 1_000_000


def _strings_of(call_type: CallType) -> tuple[tuple[str, int], ...]:
    names = ["write_key", "user_id", "anonymous_id"]
    names += [proto for proto, _ in (*_LEADING[call_type], *_TRAILING.get(call_type, ()))]
    return (*((name, MAX_STRING_CHARS) for name in names), ("message_id", SEGMENT_MAX_MESSAGE_ID_CHARS))


_STRINGS: dict[CallType, tuple[tuple[str, int], ...]] = {kind: _strings_of(kind) for kind in CallType}
"""Per call type, each string field the caller can set with its length limit."""


def check_limits(call_type: CallType, request: ProtoRequest) -> None:
    """Refuse a request over any size, length, depth or time limit, before anything parses or copies its values.

    Each check costs at most one pass over the value it reads (see :mod:`sidecar.validate.limits`); every violation
    is reported at once.
    """
    violations: list[FieldViolation] = []
    for name, limit in _STRINGS[call_type]:
        found = check_string(name, getattr(request, name), limit)
        if found is not None:
            violations.append(found)
    for name, json_name in _OBJECTS[call_type]:
        raw = getattr(request, json_name)
        if raw:
            found = check_json_bytes(json_name, raw)
            if found is not None:
                violations.append(found)
        if request.HasField(name):
            found = check_struct_size(name, getattr(request, name).ByteSize())
            if found is not None:
                violations.append(found)
    if request.HasField("timestamp"):
        stamp = request.timestamp
        found = check_timestamp(stamp.seconds, stamp.nanos)
        if found is not None:
            violations.append(found)
    if violations:
        raise InvalidEvent("; ".join(f"{v.field}: {v.description}" for v in violations), tuple(violations))


_STRUCTS = {kind: tuple(name for name, _ in objects) for kind, objects in _OBJECTS.items()}
"""Per call type, the object fields a caller may send as a Struct."""


class _Plan:
    """One call type's reading plan, built once: every scalar field the caller can set is read in one C call
    (``operator.attrgetter`` over the names), and each value's place in that tuple is precomputed, so the per-event
    path reads each field once and does no string work."""

    __slots__ = ("context", "leading", "marks", "objects", "read", "strings", "trailing")

    def __init__(self, call_type: CallType) -> None:
        names = [name for name, _ in _STRINGS[call_type]]
        self.strings = len(names)
        position = {name: index for index, name in enumerate(names)}
        self.leading = tuple((position[proto], json) for proto, json in _LEADING[call_type])
        self.trailing = tuple((position[proto], json) for proto, json in _TRAILING.get(call_type, ()))
        # (Struct field, JSON bytes field, index of the bytes in the values read)
        self.objects = tuple(
            (name, json_name, len(names) + index) for index, (name, json_name) in enumerate(_OBJECTS[call_type])
        )
        # HasField of each Struct field, then of the timestamp: a request's "marks" are these answers, in this order.
        self.marks = tuple(operator.methodcaller("HasField", name) for name in (*_STRUCTS[call_type], "timestamp"))
        self.context = next(index for name, _, index in self.objects if name == "context")
        self.read = operator.attrgetter(*names, *(json_name for _, json_name in _OBJECTS[call_type]), "region")


_PLANS = {kind: _Plan(kind) for kind in CallType}


def _within_limits(plan: _Plan, rows: list[tuple[Any, ...]]) -> bool:
    """Whether every request's strings and JSON bytes (``rows`` of the values ``plan.read`` gives) are far inside
    their limits, so that :func:`check_limits` would find nothing in them: the common case, settled a field at a time
    over all the requests."""
    columns = list(zip(*rows, strict=True))
    return columns_far_inside_limits(columns[: plan.strings], columns[plan.strings : -1])


def _row_within_limits(plan: _Plan, values: tuple[Any, ...]) -> bool:
    """:func:`_within_limits` for one request, along its row (building the columns of one row took 5 us)."""
    return row_far_inside_limits(values[: plan.strings], values[plan.strings : -1])


def _read_objects(
    request: ProtoRequest,
    plan: _Plan,
    values: tuple[Any, ...],
    marked: tuple[bool, ...],
    fields: dict[str, Any],
    parsed: dict[str, dict[str, Any]],
    violations: list[FieldViolation],
) -> None:
    """The JSON object fields of a request into ``fields`` (what to embed) and ``parsed`` (what to check)."""
    # ``marked`` ends with the timestamp's mark, which zip leaves out.
    for (name, json_name, index), has_struct in zip(plan.objects, marked, strict=False):
        raw = values[index]
        if not raw and not has_struct:
            continue
        if raw and not has_struct:
            # The fast path: a JSON object sent as bytes, parsed once, embedded as-is. Anything else (unparsable,
            # not an object) falls through to _object, which words the violation.
            value = _json_object(raw, json_name) if name not in _REPEATED else _repeated_object(raw, json_name)
            if isinstance(value, dict):
                fields[name] = orjson.Fragment(raw)
                parsed[name] = value
                continue
            if value is not None:
                violations.append(value)
                continue
        try:
            found = _object(request, name, json_name)
        except InvalidEvent as exc:
            violations.extend(exc.violations)
            continue
        if found is not None:
            fields[name], parsed[name] = found


def to_calls(
    call_type: CallType, requests: Sequence[ProtoRequest], default_region: Region, received_at: float
) -> Iterator[Call | InvalidEvent]:
    """Decode requests of one call type, in order: each becomes its Call, or the InvalidEvent that refuses it (every
    problem of that request at once). Each is decoded as it is asked for, so that a consumer can pause between
    events however long one takes (a Struct of 60 KB takes milliseconds).

    What every request needs is read a field at a time over all of them (which Structs and timestamps are set, then
    the scalar values), each in one C-level pass, and when no request carries a Struct or a timestamp and every value
    is far inside its limit, the limits of all of them are settled at once. Otherwise each request the shortcut does
    not settle gets the exact :func:`check_limits` first, so nothing below parses or copies an oversized value.
    """
    if not requests:
        return
    plan = _PLANS[call_type]
    marks = list(zip(*(map(has_field, requests) for has_field in plan.marks), strict=True))
    rows = list(map(plan.read, requests))
    settled = True not in chain.from_iterable(marks) and _within_limits(plan, rows)
    for request, values, marked in zip(requests, rows, marks, strict=True):
        yield _decoded(plan, call_type, request, values, marked, default_region, received_at, settled=settled)


def to_call(call_type: CallType, request: ProtoRequest, default_region: Region, received_at: float) -> Call:
    """Decode one request into a Call or raise :class:`InvalidEvent` (all its problems): :func:`to_calls` for one."""
    plan = _PLANS[call_type]
    marked = tuple([has_field(request) for has_field in plan.marks])
    found = _decoded(plan, call_type, request, plan.read(request), marked, default_region, received_at, settled=False)
    if isinstance(found, InvalidEvent):
        raise found
    return found


def _decoded(
    plan: _Plan,
    call_type: CallType,
    request: ProtoRequest,
    values: tuple[Any, ...],
    marked: tuple[bool, ...],
    default_region: Region,
    received_at: float,
    *,
    settled: bool,
) -> Call | InvalidEvent:
    """One request, from its values, as its Call, or the InvalidEvent refusing it (every problem at once), which is
    returned without a traceback: the frames in one would hold the values read (copies, up to 16 MiB), kept alive by
    a reference cycle until the collector ran. ``settled``: the limits shortcut passed the request already.

    ``fields`` is filled in Segment's order (see ``_LEADING``); messageId and timestamp come last.
    """
    if not settled and (True in marked or not _row_within_limits(plan, values)):
        try:
            check_limits(call_type, request)
        except InvalidEvent as refusal:
            return refusal.with_traceback(None)
    fields: dict[str, Any] = {}
    parsed: dict[str, dict[str, Any]] = {}
    violations: list[FieldViolation] = []
    for index, json_name in plan.leading:
        value = values[index]
        if value:
            fields[json_name] = value
    if user_id := values[1]:
        fields["userId"] = user_id
    if anonymous_id := values[2]:
        fields["anonymousId"] = anonymous_id
    for index, json_name in plan.trailing:
        value = values[index]
        if value:
            fields[json_name] = value
    _read_objects(request, plan, values, marked, fields, parsed, violations)
    if message_id := values[plan.strings - 1]:
        fields["messageId"] = message_id
    if marked[-1]:
        fields["timestamp"] = _timestamp(request.timestamp)
    region = default_region
    if request_region := values[-1]:
        known = _REGIONS.get(request_region)
        if known is None:
            violations.append(FieldViolation("region", f"unknown region {request_region}; use REGION_US or REGION_EU"))
        else:
            region = known
    if violations:
        return InvalidEvent("; ".join(f"{v.field}: {v.description}" for v in violations), tuple(violations))
    context = values[plan.context]
    return Call(call_type, values[0], region, fields, parsed, received_at, context if "context" in parsed else b"")


BATCH_KINDS: dict[str, CallType] = {kind.value: kind for kind in CallType}
"""The ``BatchEvent.event`` oneof names, which are the call types' names."""
DECODE_RUN = 256
"""The most events of a Batch whose fields and limits are read together; each is still built only when the handler
asks for it, so a handler that pauses between events still pauses every few milliseconds."""
_KIND_OF = operator.methodcaller("WhichOneof", "event")
_FIRST = operator.itemgetter(0)
_SECOND = operator.itemgetter(1)

BatchItem = tuple[CallType | None, ProtoRequest | None, Call | InvalidEvent | None]
"""A Batch event decoded: (call type, its request, its Call or the InvalidEvent refusing it), or (None, None, None)
for an event with no call type set."""


def batch_calls(events: Sequence[pb.BatchEvent], default_region: Region, received_at: float) -> Iterator[BatchItem]:
    """The events of a Batch request decoded in order; each run of consecutive events of one call type is decoded
    together by :func:`to_calls`, :data:`DECODE_RUN` at a time."""
    for start in range(0, len(events), DECODE_RUN):
        chunk = events[start : start + DECODE_RUN]
        for kind_name, run in groupby(zip(map(_KIND_OF, chunk), chunk, strict=True), key=_FIRST):
            if kind_name is None:
                for _ in run:
                    yield None, None, None
                continue
            call_type = BATCH_KINDS[kind_name]
            requests = list(map(getattr, map(_SECOND, run), repeat(kind_name)))
            yield from zip(
                repeat(call_type), requests, to_calls(call_type, requests, default_region, received_at), strict=False
            )
