"""The Spec conformance check as a validator: near-miss event names refused in strict mode, the rest warnings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sidecar.errors import FieldViolation, InvalidEvent
from sidecar.model import Call, CallType, Warning
from sidecar.validate.spec import Severity, SpecChecker

# Which JSON field holds the name and which the payload the Spec speaks about, per call type.
_NAME_FIELD = {CallType.TRACK: "event", CallType.PAGE: "name", CallType.SCREEN: "name"}
_PAYLOAD_FIELD = {
    CallType.TRACK: "properties",
    CallType.PAGE: "properties",
    CallType.SCREEN: "properties",
    CallType.IDENTIFY: "traits",
    CallType.GROUP: "traits",
}


_SPOTS: dict[CallType, tuple[str | None, str | None]] = {
    kind: (_NAME_FIELD.get(kind), _PAYLOAD_FIELD.get(kind)) for kind in CallType if kind is not CallType.ALIAS
}
"""Per call type the Spec speaks about, (name field, payload field): one lookup per call (alias has neither)."""


class SpecRule:
    """Runs :class:`SpecChecker` on a call; findings of ERROR severity refuse it with the suggestion."""

    __slots__ = ("_checker",)

    def __init__(self, mode: Literal["strict", "warn", "off"], allow: Iterable[str] = ()) -> None:
        self._checker = SpecChecker(mode, allow)

    def __call__(self, call: Call, warnings: list[Warning]) -> None:
        """Refuse near-miss names (strict mode); add every other finding as a warning."""
        spot = _SPOTS.get(call.type)
        if spot is None:
            return
        name_field, payload_field = spot
        parsed = call.parsed
        findings = self._checker.check(
            call.type,
            call.fields.get(name_field) if name_field else None,
            parsed.get(payload_field) if payload_field else None,
            parsed.get("integrations"),
        )
        if not findings:
            return
        errors = [f for f in findings if f.severity is Severity.ERROR]
        if errors:
            raise InvalidEvent(
                " ".join(f.message for f in errors),
                tuple(FieldViolation(f.field, f.message) for f in errors),
            )
        warnings.extend(Warning(f.code, f.field, f.message) for f in findings)
