"""Grouping events by (write key, region): the one grouping the read-ahead, the dispatcher's counts and the outcome
records of a removal all use."""

from __future__ import annotations

from sidecar.model import Event, Region, by_key, payload_bytes


def event(write_key: str, region: Region, seq: int, payload: bytes = b"{}") -> Event:
    """An event of ``write_key`` in ``region`` numbered ``seq``."""
    return Event(write_key, region, f"m-{seq}", payload, 1.0, seq)


def test_one_keys_events_come_back_as_the_sequence_they_came_in() -> None:
    """A batch of one key is one group: the very sequence passed in, not a copy."""
    events = [event("wk", Region.US, seq) for seq in range(5)]
    groups = by_key(events)
    assert groups == [(("wk", Region.US), events)]
    assert groups[0][1] is events


def test_several_keys_are_grouped_in_first_seen_order_keeping_each_groups_order() -> None:
    """Interleaved keys, and the same write key in two regions, are separate groups, in the order each key first
    appears, each group in the events' own order."""
    events = [
        event("b", Region.US, 1),
        event("a", Region.US, 2),
        event("b", Region.EU, 3),
        event("b", Region.US, 4),
        event("a", Region.US, 5),
    ]
    groups = by_key(events)
    assert [key for key, _ in groups] == [("b", Region.US), ("a", Region.US), ("b", Region.EU)]
    assert [[e.seq for e in group] for _, group in groups] == [[1, 4], [2, 5], [3]]


def test_no_events_no_groups_and_payload_bytes_sums_the_payloads() -> None:
    """Nothing to group gives no groups; payload_bytes is the payloads' total length."""
    assert by_key([]) == []
    assert payload_bytes([event("wk", Region.US, 1, b"abc"), event("wk", Region.EU, 2, b"defgh")]) == 8
    assert payload_bytes([]) == 0
