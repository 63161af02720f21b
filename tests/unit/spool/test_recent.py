"""The spool's read-ahead: reads of what was just committed come from memory and answer exactly what the store would;
anything it no longer covers (recovered, evicted) is left to the store."""

from __future__ import annotations

import random
from pathlib import Path

from sidecar.model import Event, Region, ShardKey, SpooledEvent
from sidecar.spool import SqliteStore
from sidecar.spool.recent import Recent

KEY_A: ShardKey = ("wk-a", Region.US)
KEY_B: ShardKey = ("wk-b", Region.EU)


def spooled(key: ShardKey, seqs: range, size: int = 10) -> list[SpooledEvent]:
    """Numbered events of ``key`` with ``size``-byte payloads."""
    return [Event(key[0], key[1], f"m{seq}", b"%0*d" % (size, seq), 1.5, seq) for seq in seqs]


def seqs_of(events: list[SpooledEvent] | None) -> list[int] | None:
    """The seqs read, or None when the read-ahead could not answer."""
    return None if events is None else [event.seq for event in events]


def test_a_read_stops_at_the_byte_budget_and_the_event_count_with_at_least_one_event() -> None:
    """The same budget rules as the store's read: payload bytes, event count, never an empty answer if any is left."""
    recent = Recent()
    recent.add(spooled(KEY_A, range(1, 11)))
    assert seqs_of(recent.read(KEY_A, 0, 30, 100)) == [1, 2, 3]
    assert seqs_of(recent.read(KEY_A, 0, 35, 100)) == [1, 2, 3]
    assert seqs_of(recent.read(KEY_A, 0, 1000, 4)) == [1, 2, 3, 4]
    assert seqs_of(recent.read(KEY_A, 8, 5, 100)) == [9], "one event even when it alone is over the budget"
    assert seqs_of(recent.read(KEY_A, 10, 1000, 100)) == []


def test_reads_below_what_it_covers_are_left_to_the_store() -> None:
    """A key first seen at seq 5 (its backlog recovered from disk) is not answered for a read that starts earlier."""
    recent = Recent(partial=[(KEY_A, 5)])
    recent.add(spooled(KEY_A, range(5, 8)))
    assert recent.read(KEY_A, 0, 1000, 100) is None
    assert recent.read(KEY_A, 3, 1000, 100) is None
    assert seqs_of(recent.read(KEY_A, 4, 1000, 100)) == [5, 6, 7]
    assert recent.read(KEY_B, 0, 1000, 100) is None, "a key never appended in this run: the store answers"


def test_delivered_and_dead_lettered_events_leave_it() -> None:
    """Removing a key's oldest events, or some in the middle, leaves exactly the others, in order."""
    recent = Recent()
    recent.add(spooled(KEY_A, range(1, 11)) + spooled(KEY_B, range(11, 13)))
    recent.remove(spooled(KEY_A, range(1, 4)), None)
    assert seqs_of(recent.read(KEY_A, 3, 1000, 100)) == list(range(4, 11))
    recent.remove([spooled(KEY_A, range(6, 7))[0], spooled(KEY_B, range(12, 13))[0]], None)
    assert seqs_of(recent.read(KEY_A, 3, 1000, 100)) == [4, 5, 7, 8, 9, 10]
    assert seqs_of(recent.read(KEY_B, 10, 1000, 100)) == [11]
    assert recent.bytes == 7 * 10


def test_past_its_bound_the_least_recently_appended_key_is_left_to_the_store() -> None:
    """Past the bound, the oldest events of the key appended to least recently go (down to seven eighths of the
    bound); reads of what went are left to the store."""
    recent = Recent(max_bytes=100)
    recent.add(spooled(KEY_A, range(1, 6)))
    recent.add(spooled(KEY_B, range(6, 11)))
    recent.add(spooled(KEY_B, range(11, 12)))
    assert recent.bytes == 80, "110 bytes: A's three oldest went"
    assert recent.read(KEY_A, 0, 1000, 100) is None
    assert seqs_of(recent.read(KEY_A, 3, 1000, 100)) == [4, 5]
    recent.add(spooled(KEY_B, range(20, 25)))
    assert recent.read(KEY_A, 3, 1000, 100) is None, "A went whole"
    assert recent.read(KEY_B, 5, 1000, 100) is None, "then B's oldest"
    assert seqs_of(recent.read(KEY_B, 8, 1000, 100)) == [9, 10, 11, 20, 21, 22, 23, 24]
    assert recent.bytes == 80
    recent.add(spooled(KEY_A, range(30, 31)))
    assert seqs_of(recent.read(KEY_A, 29, 1000, 100)) == [30]


def test_it_answers_every_read_as_the_store_does(tmp_path: Path) -> None:
    """Random commits of two keys, removals of oldest and middle events, a small bound: every read it answers is
    the store's answer, byte for byte."""
    rng = random.Random(22)
    store = SqliteStore(tmp_path)
    store.open()
    recent = Recent(max_bytes=2_000)
    seq = 0
    held: dict[ShardKey, list[SpooledEvent]] = {KEY_A: [], KEY_B: []}
    answered = 0
    try:
        for _ in range(300):
            action = rng.random()
            if action < 0.4:
                batch = []
                for _ in range(rng.randint(1, 20)):
                    seq += 1
                    key = rng.choice((KEY_A, KEY_B))
                    batch.append(Event(key[0], key[1], f"m{seq}", b"p" * rng.randint(1, 60), 2.0, seq))
                    held[key].append(batch[-1])
                store.insert(batch)
                recent.add(batch)
            elif action < 0.7:
                key = rng.choice((KEY_A, KEY_B))
                count = rng.randint(0, len(held[key]))
                leaving = held[key][:count] if rng.random() < 0.7 else rng.sample(held[key], count)
                leaving.sort(key=lambda event: event.seq)
                store.delete([event.seq for event in leaving])
                recent.remove(leaving, store.oldest([key]))
                held[key] = [event for event in held[key] if event not in leaving]
            else:
                key = rng.choice((KEY_A, KEY_B))
                after = rng.choice([0] + [event.seq for event in held[key]])
                max_bytes, max_events = rng.randint(1, 400), rng.randint(1, 30)
                mine = recent.read(key, after, max_bytes, max_events)
                if mine is not None:
                    answered += 1
                    theirs = store.read(key, after, max_bytes, max_events)
                    assert [(e.seq, e.message_id, e.payload) for e in mine] == [
                        (e.seq, e.message_id, e.payload) for e in theirs
                    ]
    finally:
        store.close()
    assert answered > 20


def test_a_key_recovered_from_disk_is_covered_whole_once_its_backlog_left() -> None:
    """When a removal's job finds the key's oldest event left among the events here, reads from the key's start (a
    cursor of 0: nothing in flight) come from memory too."""
    recent = Recent(partial=[(KEY_A, 4)])  # seqs 1-3 were recovered from disk
    recent.add(spooled(KEY_A, range(4, 8)))
    assert recent.read(KEY_A, 0, 1000, 100) is None
    recent.remove(spooled(KEY_A, range(1, 3)), {KEY_A: (3, 1.5)})
    assert recent.read(KEY_A, 0, 1000, 100) is None, "seq 3 is still on disk only"
    recent.remove(spooled(KEY_A, range(3, 4)), {KEY_A: (4, 1.5)})
    assert seqs_of(recent.read(KEY_A, 0, 1000, 100)) == [4, 5, 6, 7]
    recent.remove(spooled(KEY_A, range(4, 8)), {})
    recent.add(spooled(KEY_A, range(9, 10)))
    assert seqs_of(recent.read(KEY_A, 0, 1000, 100)) == [9], "emptied, then a new commit: still the whole key"
