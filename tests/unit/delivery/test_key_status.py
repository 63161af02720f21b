"""Each key's state from Segment's answers: the table in :mod:`sidecar.delivery.key_status` (changes only, which
ones the stream shows, REFUSED kept through 5xx probes), and the scheduler counting a park from a stored refusal."""

from __future__ import annotations

from sidecar.delivery.key_status import KeyBook
from sidecar.model import Region
from sidecar.outcomes.records import KeyRecord, KeyState, OutcomeKind
from sidecar.send.classify import Delivered, Permanent, Retry, Unauthorized

KEY = ("wk-a", Region.US)


def _apply(book: KeyBook, outcome: object, at: float) -> tuple[KeyState, OutcomeKind | None] | None:
    change = book.change(KEY, outcome, at)  # type: ignore[arg-type]
    if change is None:
        return None
    book.apply(change)
    return change.record.state, None if change.outcome is None else change.outcome.kind


def test_states_change_only_on_a_change_and_the_stream_shows_the_right_ones() -> None:
    """UNKNOWN->OK is stored unshown; OK->RETRYING, RETRYING->REFUSED, REFUSED->OK are shown; repeats are not
    changes; a 5xx on a REFUSED key keeps it REFUSED since its first refusal; other 4xx change nothing."""
    book = KeyBook()
    assert _apply(book, Delivered(200), 1.0) == (KeyState.OK, None)
    assert _apply(book, Delivered(200), 2.0) is None
    assert _apply(book, Retry("503", status=503), 3.0) == (KeyState.RETRYING, OutcomeKind.KEY_RETRYING)
    assert _apply(book, Unauthorized("revoked", 401), 4.0) == (KeyState.REFUSED, OutcomeKind.KEY_REFUSED)
    assert _apply(book, Unauthorized("revoked", 401), 5.0) is None
    assert _apply(book, Retry("503", status=503), 6.0) is None
    assert _apply(book, Permanent("bad batch", 400), 6.5) is None
    assert book.refused_since(KEY) == 4.0
    assert _apply(book, Delivered(200), 7.0) == (KeyState.OK, OutcomeKind.KEY_RECOVERED)
    assert book.refused_since(KEY) is None
    assert book.delivered_at[KEY] == 7.0


def test_a_stored_refusal_comes_back_with_its_time() -> None:
    """load() restores REFUSED since T: a new refusal after a restart is no change, so T stays."""
    book = KeyBook()
    book.load([KeyRecord("wk-a", "us", KeyState.REFUSED, 100.0, 401, "revoked")])
    assert book.refused_since(KEY) == 100.0
    assert _apply(book, Unauthorized("revoked", 401), 500.0) is None
    assert book.refused_since(KEY) == 100.0
