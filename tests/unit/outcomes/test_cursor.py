"""Outcome cursors: opaque, round-trip, and refused (INVALID_ARGUMENT on the field) when garbled or of another
spool."""

from __future__ import annotations

import pytest

from sidecar.errors import InvalidEvent
from sidecar.outcomes import cursor


def test_a_cursor_round_trips_to_its_seq() -> None:
    """decode(encode(id, seq)) is seq, and the cursor does not show the seq in clear."""
    text = cursor.encode("abcd", 42)
    assert cursor.decode(text, "abcd") == 42
    assert "42" not in text


@pytest.mark.parametrize("text", ["", "nonsense", "!!!", cursor.encode("abcd", 1)[:-3]])
def test_a_garbled_cursor_is_refused_on_its_field(text: str) -> None:
    """Anything that is not a cursor is an InvalidEvent naming after_cursor."""
    with pytest.raises(InvalidEvent) as refused:
        cursor.decode(text, "abcd")
    assert [v.field for v in refused.value.violations] == ["after_cursor"]


def test_a_cursor_of_another_spool_is_refused() -> None:
    """A cursor carries its spool's id: another spool's cursor is refused, saying so."""
    with pytest.raises(InvalidEvent, match="another spool"):
        cursor.decode(cursor.encode("other", 5), "abcd")
