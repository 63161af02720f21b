"""Proto requests -> :class:`~sidecar.model.Call`: decode once, at the edge, into Segment's JSON field names.

JSON objects arrive either as ``google.protobuf.Struct`` or as the raw bytes of a JSON object (``*_json``). Raw bytes
are parsed once (orjson) to check them and to feed the Spec checker, and are then embedded in the outgoing event as an
``orjson.Fragment``, so the caller's JSON is never re-encoded. A Struct holds every number as a double; whole numbers
are turned back into integers here, since Segment (and its destinations) must see ``3``, not ``3.0``.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf import struct_pb2, timestamp_pb2

from sidecar._proto import sidecar_pb2 as pb
from sidecar.errors import FieldViolation, InvalidEvent
from sidecar.model import Call, CallType, Region

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


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        # A Struct can only carry doubles; a whole number was an integer on the caller's side.
        return int(number) if number.is_integer() and abs(number) < 2**63 else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    return None


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain JSON values, whole numbers as ints."""
    return {key: _value(item) for key, item in struct.fields.items()}


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
        return orjson.Fragment(raw), parsed
    if has_struct:
        parsed = struct_to_dict(getattr(request, name))
        return parsed, parsed
    return None


def _timestamp(stamp: timestamp_pb2.Timestamp) -> tuple[int, int]:
    """(seconds, milliseconds): kept as integers, since a float would round 20.123 s down to 20.122."""
    return int(stamp.seconds), int(stamp.nanos) // 1_000_000


def to_call(call_type: CallType, request: ProtoRequest, default_region: Region, received_at: float) -> Call:
    """Decode a request into a Call; raise :class:`InvalidEvent` for undecodable input (all problems at once).

    ``fields`` is filled in Segment's order (see ``_LEADING``); messageId and timestamp come last.
    """
    fields: dict[str, Any] = {}
    parsed: dict[str, dict[str, Any]] = {}
    violations: list[FieldViolation] = []
    for proto_name, json_name in _LEADING[call_type]:
        value = getattr(request, proto_name)
        if value:
            fields[json_name] = value
    if user_id := request.user_id:
        fields["userId"] = user_id
    if anonymous_id := request.anonymous_id:
        fields["anonymousId"] = anonymous_id
    for proto_name, json_name in _TRAILING.get(call_type, ()):
        value = getattr(request, proto_name)
        if value:
            fields[json_name] = value
    for name, json_name in _OBJECTS[call_type]:
        raw = getattr(request, json_name)
        has_struct = request.HasField(name)
        if raw and not has_struct:
            # The fast path, inline: a JSON object sent as bytes, parsed once, embedded as-is. Anything else
            # (unparsable, not an object) falls through to _object, which words the violation.
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                value = None
            if type(value) is dict:
                fields[name] = orjson.Fragment(raw)
                parsed[name] = value
                continue
        elif not has_struct:
            continue
        try:
            found = _object(request, name, json_name)
        except InvalidEvent as exc:
            violations.extend(exc.violations)
            continue
        if found is not None:
            fields[name], parsed[name] = found
    if message_id := request.message_id:
        fields["messageId"] = message_id
    if request.HasField("timestamp"):
        fields["timestamp"] = _timestamp(request.timestamp)
    region = default_region
    if request.region:
        known = _REGIONS.get(request.region)
        if known is None:
            violations.append(FieldViolation("region", f"unknown region {request.region}; use REGION_US or REGION_EU"))
        else:
            region = known
    if violations:
        raise InvalidEvent("; ".join(f"{v.field}: {v.description}" for v in violations), tuple(violations))
    return Call(call_type, request.write_key, region, fields, parsed, received_at)


BATCH_KINDS: dict[str, CallType] = {kind.value: kind for kind in CallType}
"""The ``BatchEvent.event`` oneof names, which are the call types' names."""
