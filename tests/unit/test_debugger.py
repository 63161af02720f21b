"""The debugger's ring buffer and rendering, without a browser (the page itself is tested in tests/browser)."""

from __future__ import annotations

from sidecar.debugger import Debugger
from sidecar.debugger.server import RING_SIZE, SHOWN_NAME_CHARS
from sidecar.errors import InvalidEvent
from sidecar.model import Batch, CallType, Event, Region, SpooledEvent, Warning, write_key_hash
from sidecar.send.classify import Delivered

KEY = "wk-debugger-secret"


def event(name: str = "Email Opened") -> Event:
    """An accepted track event."""
    payload = b'{"type":"track","event":"%s","userId":"u1","messageId":"m1"}' % name.encode()
    return Event(KEY, Region.US, "m1", payload, 1000.0)


def test_ring_is_bounded_and_counts_what_it_dropped() -> None:
    """Without a page the ring keeps only the newest RING_SIZE entries; a late cursor learns how many it missed."""
    debugger = Debugger("127.0.0.1:0")
    for _ in range(RING_SIZE + 50):
        debugger.accepted(event(), CallType.TRACK, ())
    assert len(debugger._ring) == RING_SIZE
    entries, skipped = debugger._newer_than(0, 100)
    assert len(entries) == 100
    assert entries[-1][0] == RING_SIZE + 50
    assert skipped == RING_SIZE + 50 - 100


def test_entries_render_without_the_write_key() -> None:
    """Accepted, rejected (with the Spec suggestion) and batch entries render to JSON holding only the key's hash."""
    debugger = Debugger("127.0.0.1:0")
    debugger.accepted(event(), CallType.TRACK, (Warning("spec.x", "properties.email_id", "missing"),))
    error = InvalidEvent.single(
        "event",
        '"email open" looks like the Spec event "Email Opened" (Email); send '
        '"Email Opened" instead so destinations recognise it',
    )
    debugger.rejected(CallType.TRACK, KEY, error, {"event": "email open"})
    spooled = SpooledEvent(KEY, Region.US, "m1", event().payload, 1000.0, seq=1)
    debugger.attempt_finished(Batch((KEY, Region.US), [spooled], 60), Delivered(200), 0.02)
    accepted, rejected, batch = (debugger.render(entry) for entry in debugger._ring)
    assert accepted["name"] == "Email Opened" and accepted["event"]["userId"] == "u1"
    assert accepted["warnings"][0]["code"] == "spec.x"
    assert rejected["suggestion"] == "Email Opened" and rejected["code"] == "INVALID_ARGUMENT"
    assert rejected["violations"] == [{"field": "event", "description": error.violations[0].description}]
    assert batch["status"] == 200 and batch["delivered"] and batch["message_ids"] == ["m1"]
    for rendered in (accepted, rejected, batch):
        assert rendered["write_key_hash"] == write_key_hash(KEY)
        assert KEY not in repr(rendered)


def test_a_refused_event_keeps_only_a_clipped_name_and_the_key_hash() -> None:
    """A refused event with an 8 MiB name and a 1 MiB write key holds 200 characters of the name and the key's hash
    in the ring, not the raw fields: 2,000 such entries would otherwise pin 18 GiB."""
    debugger = Debugger("127.0.0.1:0")
    huge_key = "k" * 2**20
    error = InvalidEvent.single("event", "has 8,388,608 characters; an event name may have at most 1024")
    debugger.rejected(CallType.TRACK, huge_key, error, {"event": "x" * 8 * 2**20})
    (entry,) = debugger._ring
    assert sum(len(part) for part in entry if isinstance(part, str)) < 1000
    rendered = debugger.render(entry)
    assert rendered["name"] == "x" * SHOWN_NAME_CHARS + "… (8,388,608 characters)"
    assert rendered["write_key_hash"] == write_key_hash(huge_key)
    assert huge_key not in debugger._hashes


async def test_lifecycle_stop_without_start_and_twice() -> None:
    """stop() is safe without start() and twice; start() binds a port."""
    debugger = Debugger("127.0.0.1:0")
    await debugger.stop()
    await debugger.start()
    assert debugger.port > 0
    await debugger.stop()
    await debugger.stop()
