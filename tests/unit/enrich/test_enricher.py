"""The enricher: required fields, the caller's timestamp kept exactly, and compact payloads."""

from __future__ import annotations

import time
import tracemalloc
import uuid

import orjson

from sidecar.enrich.enricher import Enricher, MessageIds
from sidecar.model import Call, CallType, Region


def call(**fields: object) -> Call:
    """A track call with the given Segment fields."""
    return Call(CallType.TRACK, "wk", Region.US, {"userId": "u", "event": "Report Generated", **fields}, {}, 1.7e9)


def test_required_fields_are_added() -> None:
    """type, messageId, timestamp, context.integration and context.library are set."""
    event = Enricher("acme-mail", "1.0.0")(call(), [])
    body = orjson.loads(event.payload)
    assert body["type"] == "track" and body["messageId"] == event.message_id
    assert body["context"]["integration"] == {"name": "acme-mail", "version": "1.0.0"}
    assert body["context"]["library"]["name"] == "segment-sidecar"
    assert body["timestamp"] == "2023-11-14T22:13:20.000Z"


def test_payloads_are_stored_at_their_own_size() -> None:
    """Queued payloads cost their length, not orjson's whole output buffer (a backlog must fit its memory bound)."""
    enrich = Enricher("acme-mail", "1.0.0")
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        events = [enrich(call(properties={"i": i}), []) for i in range(1000)]
        grown = tracemalloc.take_snapshot().compare_to(before, "filename")
    finally:
        tracemalloc.stop()
    allocated = sum(stat.size_diff for stat in grown if stat.size_diff > 0)
    payload_bytes = sum(len(e.payload) for e in events)
    assert allocated < 4 * payload_bytes, (allocated, payload_bytes)


def test_message_ids_are_unique_time_ordered_uuid7s_across_generators() -> None:
    """Every id parses as an RFC 9562 UUIDv7 stamped with now; ids never repeat, sort in creation order, and differ
    in their last 12 hex digits too (the part a narrow display shows)."""
    first, second = MessageIds(), MessageIds()
    before_ms = time.time_ns() // 1_000_000
    ids = [first() for _ in range(5000)] + [second() for _ in range(5000)]
    after_ms = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert len({text[-12:] for text in ids}) == len(ids)
    assert ids == sorted(ids)
    for text in (ids[0], ids[4999], ids[5000]):
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before_ms <= parsed.int >> 80 <= after_ms
