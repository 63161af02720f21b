"""The partner rules on identifiers: blank ids and control characters are refused, naming the field, never the key."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.errors import InvalidEvent
from sidecar.model import Call, CallType, Region, Warning
from sidecar.validate.rules import default_validators


def call(write_key: str = "wk", call_type: CallType = CallType.TRACK, **fields: Any) -> Call:
    """A call as the edge decodes it, with a user id and an event unless told otherwise."""
    base: dict[str, Any] = {"userId": "u1", "event": "Custom Thing"}
    return Call(call_type, write_key, Region.US, {**base, **fields}, {}, 0.0)


def run(a_call: Call) -> list[Warning]:
    """The default validators on ``a_call``, in order, as the intake runs them: its warnings, or the refusal."""
    warnings: list[Warning] = []
    for validator in default_validators():
        validator(a_call, warnings)
    return warnings


def refused(a_call: Call) -> dict[str, str]:
    """The violations of a refused call, by field."""
    with pytest.raises(InvalidEvent) as error:
        run(a_call)
    return {v.field: v.description for v in error.value.violations}


@pytest.mark.parametrize(
    "user_id",
    [" ", "   ", "\t", "\u00a0", "\u200b", "\u200b\u200c\u200d", "\ufeff", "\u00ad", " \u2060 ", "\u3000", "\u3164"],
)
def test_a_user_id_blank_once_trimmed_is_refused(user_id: str) -> None:
    """Spaces, no-break and ideographic spaces, zero-width and other invisible characters alone are no user id."""
    problems = refused(call(userId=user_id))
    assert list(problems) == ["user_id"]
    assert "blank" in problems["user_id"]
    assert "U+" in problems["user_id"]


@pytest.mark.parametrize(("user_id", "shown"), [("u1\n", "U+000A"), ("\x00", "U+0000"), ("a\x7fb", "U+007F")])
def test_a_user_id_with_a_control_character_is_refused(user_id: str, shown: str) -> None:
    """A control character anywhere in a user id is refused, named by its code point and position."""
    problems = refused(call(userId=user_id))
    assert shown in problems["user_id"]


@pytest.mark.parametrize(
    ("field", "proto"),
    [("anonymousId", "anonymous_id"), ("groupId", "group_id"), ("previousId", "previous_id"), ("event", "event")],
)
def test_the_other_ids_get_the_same_rule(field: str, proto: str) -> None:
    """anonymous, group and previous ids and the event name: blank or control characters are refused on their field."""
    call_type = {"groupId": CallType.GROUP, "previousId": CallType.ALIAS}.get(field, CallType.TRACK)
    assert proto in refused(call(call_type=call_type, **{field: " \u200b"}))
    assert proto in refused(call(call_type=call_type, **{field: "x\r"}))


@pytest.mark.parametrize("key", ["wk\n", "\x00wk", "w\x1bk", "wk\x85"])
def test_a_write_key_with_a_control_character_is_refused_without_showing_it(key: str) -> None:
    """A write key with a control character is refused on write_key; the message never shows the key."""
    problems = refused(call(write_key=key))
    assert list(problems) == ["write_key"]
    assert "control character U+" in problems["write_key"]
    assert "wk" not in problems["write_key"].replace("write key", "")


@pytest.mark.parametrize(
    "user_id", ["u1", "user@example.com", "José", "ユーザー1", " padded ", "a b", "a\u200bb", "12345"]
)
def test_real_ids_pass(user_id: str) -> None:
    """Real ids, non-ASCII ones and ids with inner spaces or an inner invisible character, pass."""
    assert run(call(userId=user_id)) == []


def test_every_problem_is_named_at_once() -> None:
    """A bad write key, a blank user id and a missing event are one refusal naming all three."""
    a_call = Call(CallType.TRACK, "wk\n", Region.US, {"userId": "\u200b"}, {}, 0.0)
    assert set(refused(a_call)) == {"write_key", "user_id", "event"}
