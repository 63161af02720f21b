"""The partner rules: small validators, each a callable built once, run in order on every call.

A validator raises :class:`~sidecar.errors.InvalidEvent` to refuse a call, or appends
:class:`~sidecar.model.Warning` s to let it through with a remark. Field paths in violations are the proto field
names the caller set (``user_id``, ``event``), so a client can point at its own code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sidecar.errors import FieldViolation, InvalidEvent
from sidecar.model import Call, CallType, Warning
from sidecar.validate.text import blank, describe, first_control

Validator = Callable[[Call, list[Warning]], None]
"""Checks one call: raises InvalidEvent to refuse it, appends warnings to keep it with a remark."""

# (Segment JSON field, proto field, why it is needed) per call type, beyond write_key and user_id.
_REQUIRED: dict[CallType, tuple[tuple[str, str, str], ...]] = {
    CallType.TRACK: (("event", "event", 'a track call needs the event name, such as "Email Opened"'),),
    CallType.GROUP: (("groupId", "group_id", "a group call needs the id of the group"),),
    CallType.ALIAS: (("previousId", "previous_id", "an alias call needs the previous id to merge into user_id"),),
}


# The ids that name a record in the customer's database, and the track event's name, as (Segment JSON field, proto
# field): none of them means anything blank, or with a control character in it.
_COMMON_IDS = (("userId", "user_id"), ("anonymousId", "anonymous_id"))
_IDS: dict[CallType, tuple[tuple[str, str], ...]] = {
    CallType.TRACK: (*_COMMON_IDS, ("event", "event")),
    CallType.IDENTIFY: _COMMON_IDS,
    CallType.PAGE: _COMMON_IDS,
    CallType.SCREEN: _COMMON_IDS,
    CallType.GROUP: (*_COMMON_IDS, ("groupId", "group_id")),
    CallType.ALIAS: (*_COMMON_IDS, ("previousId", "previous_id")),
}


def _id_problem(proto_name: str, value: str) -> FieldViolation | None:
    """A violation for an id or name that is blank once trimmed or holds a control character (named by code point:
    the value itself may not print)."""
    if blank(value):
        shown = ", ".join(describe(ch) for ch in dict.fromkeys(value))
        return FieldViolation(
            proto_name, f"is blank once spaces and invisible characters are trimmed (it holds only {shown})"
        )
    control = first_control(value)
    if control is not None:
        position, ch = control
        return FieldViolation(proto_name, f"holds the control character {describe(ch)} at position {position}")
    return None


class RequiredFields:
    """write_key and user_id on every call (partner streams must identify users), plus each call's own fields.

    An id that is blank once spaces and invisible characters are trimmed counts as missing, and an id or write key
    holding a control character (a newline read from a file, a NUL) is refused: neither names anything real.
    """

    __slots__ = ()

    def __call__(self, call: Call, warnings: list[Warning]) -> None:
        """Collect every missing or unusable field, then refuse the call once, naming them all."""
        missing: list[FieldViolation] = []
        write_key = call.write_key
        if not write_key:
            missing.append(FieldViolation("write_key", "is required: the customer's Segment source write key"))
        elif (control := first_control(write_key)) is not None:
            position, ch = control
            missing.append(
                FieldViolation(
                    "write_key",
                    f"holds the control character {describe(ch)} at position {position}: a write key has none "
                    "(check for a newline left by the file or variable it was read from)",
                )
            )
        if "userId" not in call.fields:
            missing.append(
                FieldViolation(
                    "user_id",
                    "is required: partner streams must send the customer's own user id on every call "
                    "(an anonymous_id alone is not enough)",
                )
            )
        fields = call.fields
        for json_name, proto_name in _IDS[call.type]:
            value = fields.get(json_name)
            # Printable ASCII that is not all spaces is nearly every real id: three C calls per id present. Anything
            # else (a Hangul filler is a printable letter that shows as nothing) takes the careful path.
            if type(value) is str and (not value.isascii() or not value.isprintable() or value.isspace()):
                problem = _id_problem(proto_name, value)
                if problem is not None:
                    missing.append(problem)
        for json_name, proto_name, why in _REQUIRED.get(call.type, ()):
            if json_name not in call.fields:
                missing.append(FieldViolation(proto_name, f"is required: {why}"))
        if missing:
            raise InvalidEvent("; ".join(f"{v.field} {v.description}" for v in missing), tuple(missing))


def default_validators(extra: Iterable[Validator] = ()) -> list[Validator]:
    """The partner rules, then whatever else (the Spec check) the composition root adds. (A message id's length is
    Segment's rule too, but both edges refuse a long one while reading the request, with the other limits.)"""
    return [RequiredFields(), *extra]


def object_field(call: Call, name: str) -> dict[str, Any] | None:
    """The parsed form of a JSON object field, whether it came as a Struct or as JSON bytes."""
    return call.parsed.get(name)
