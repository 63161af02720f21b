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

_OBJECT_FIELDS: dict[CallType, tuple[str, ...]] = {
    CallType.TRACK: ("properties",),
    CallType.IDENTIFY: ("traits",),
    CallType.PAGE: ("properties",),
    CallType.SCREEN: ("properties",),
    CallType.GROUP: ("traits",),
    CallType.ALIAS: (),
}
# (proto field, Segment JSON field) of the string fields each call has beyond the common ones.
_STRING_FIELDS: dict[CallType, tuple[tuple[str, str], ...]] = {
    CallType.TRACK: (("event", "event"),),
    CallType.IDENTIFY: (),
    CallType.PAGE: (("name", "name"), ("category", "category")),
    CallType.SCREEN: (("name", "name"),),
    CallType.GROUP: (("group_id", "groupId"),),
    CallType.ALIAS: (("previous_id", "previousId"),),
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


def _object(request: ProtoRequest, name: str) -> tuple[Any, dict[str, Any]] | None:
    """The JSON object field ``name``: (value to embed, parsed dict), or None when unset."""
    raw: bytes = getattr(request, name + "_json")
    has_struct = request.HasField(name)
    if raw and has_struct:
        raise InvalidEvent.single(name, f"set either {name} (Struct) or {name}_json (JSON bytes), not both")
    if raw:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent.single(
                name + "_json", f"is not valid JSON ({exc.msg} at character {exc.pos}); NaN and Infinity are not JSON"
            ) from None
        if not isinstance(parsed, dict):
            raise InvalidEvent.single(name + "_json", f"must be a JSON object, not {type(parsed).__name__}")
        return orjson.Fragment(raw), parsed
    if has_struct:
        parsed = struct_to_dict(getattr(request, name))
        return parsed, parsed
    return None


def _timestamp(stamp: timestamp_pb2.Timestamp) -> tuple[int, int]:
    """(seconds, milliseconds): kept as integers, since a float would round 20.123 s down to 20.122."""
    return int(stamp.seconds), int(stamp.nanos) // 1_000_000


def to_call(call_type: CallType, request: ProtoRequest, default_region: Region, received_at: float) -> Call:
    """Decode a request into a Call; raise :class:`InvalidEvent` for undecodable input (all problems at once)."""
    fields: dict[str, Any] = {}
    parsed: dict[str, dict[str, Any]] = {}
    violations: list[FieldViolation] = []
    if request.user_id:
        fields["userId"] = request.user_id
    if request.anonymous_id:
        fields["anonymousId"] = request.anonymous_id
    if request.message_id:
        fields["messageId"] = request.message_id
    if request.HasField("timestamp"):
        fields["timestamp"] = _timestamp(request.timestamp)
    for proto_name, json_name in _STRING_FIELDS[call_type]:
        value = getattr(request, proto_name)
        if value:
            fields[json_name] = value
    for name in ("context", "integrations", *_OBJECT_FIELDS[call_type]):
        try:
            found = _object(request, name)
        except InvalidEvent as exc:
            violations.extend(exc.violations)
            continue
        if found is not None:
            fields[name], parsed[name] = found
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
