"""The outcome log in the SQLite spool: records written in the transactions that remove or dead-letter events
(and only for events that left), kept across a reopen with the keys' states, pruned by age and bytes, and a version-1
spool migrated to version 2 with its rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sidecar.errors import SpoolFailure
from sidecar.model import Event, Region
from sidecar.outcomes.records import KeyRecord, KeyState, OutcomeKind, Stamp
from sidecar.spool import MemoryStore, SqliteStore
from sidecar.spool.memory import MemoryOutcomeReader
from sidecar.spool.outcome_rows import SqliteOutcomeReader
from sidecar.spool.store import DeadLetter


def _events(count: int) -> list[Event]:
    return [Event("wk-a", Region.US, f"m{seq}", b"{}", 1_700_000_000.0, seq) for seq in range(1, count + 1)]


def _stamp(at: float = 1_700_000_100.0, kind: OutcomeKind = OutcomeKind.DELIVERED) -> Stamp:
    return Stamp(kind, at, "fp", "us", 200)


def test_records_of_a_removal_survive_a_reopen_beside_the_removal(tmp_path: Path) -> None:
    """A delete with records commits both: after a reopen the events are gone and their records are there, in
    order, with seqs; the key's stored state comes back in the recovery."""
    store = SqliteStore(tmp_path)
    store.open()
    events = _events(5)
    store.insert(events)
    store.delete([1, 2, 3], _stamp())
    store.record_key(KeyRecord("wk-a", "us", KeyState.REFUSED, 1_700_000_050.0, 401, "revoked"), None)
    store.close()
    again = SqliteStore(tmp_path)
    recovery = again.open()
    assert recovery.backlogs[("wk-a", Region.US)].events == 2
    assert recovery.key_records == (KeyRecord("wk-a", "us", KeyState.REFUSED, 1_700_000_050.0, 401, "revoked"),)
    assert again.outcome_rows == 3
    reader = SqliteOutcomeReader(again.path)
    assert [(r.seq, r.message_id) for r in reader.after(0, 10)] == [(1, "m1"), (2, "m2"), (3, "m3")]
    assert reader.bounds() == (1, 3)
    assert [r.message_id for r in reader.by_message("m2")] == ["m2"]
    assert reader.waiting("m4") == [("wk-a", "us", 4, 1_700_000_000.0)]
    reader.close()
    again.close()


def test_a_removal_that_fails_takes_its_records_back(tmp_path: Path) -> None:
    """The records ride in the removal's transaction: they are written first, so a DELETE that fails after them
    (here a trigger aborts it) must take them back with it, leaving the events and no record."""
    store = SqliteStore(tmp_path)
    store.open()
    store.insert(_events(2))
    store._conn.execute(
        "CREATE TEMP TRIGGER refuse_removal BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'disk gone'); END"
    )
    with pytest.raises(SpoolFailure, match="disk gone"):
        store.delete([1], _stamp())
    assert [e.seq for e in store.load(0, 10_000)] == [1, 2]
    assert store.outcome_rows == 0
    assert store._conn.execute("SELECT count(*) FROM outcomes").fetchone()[0] == 0
    store.close()


def test_dead_letter_records_only_for_events_that_moved(tmp_path: Path) -> None:
    """An event already gone (delivered meanwhile) gets no second final record from a late dead-lettering."""
    store = SqliteStore(tmp_path)
    store.open()
    events = _events(3)
    store.insert(events)
    store.delete([1], _stamp())
    letters = [DeadLetter(e, 1_700_000_200.0, "why", "") for e in events[:2]]
    store.dead_letter(letters, _stamp(kind=OutcomeKind.DEAD_LETTERED))
    reader = SqliteOutcomeReader(store.path)
    assert [(r.message_id, r.kind) for r in reader.after(0, 10)] == [
        ("m1", OutcomeKind.DELIVERED),
        ("m2", OutcomeKind.DEAD_LETTERED),
    ]
    reader.close()
    store.close()


def test_pruning_drops_the_oldest_records_by_age_then_by_bytes(tmp_path: Path) -> None:
    """Records older than the cut go, then the oldest until the rest fit the byte bound; the bounds move."""
    store = SqliteStore(tmp_path)
    store.open()
    store.insert(_events(10))
    for seq in range(1, 11):
        store.delete([seq], _stamp(at=1000.0 + seq))
    assert store.prune_outcomes(10**9, 1003.5) == 3
    size = _stamp().fixed_size
    assert store.prune_outcomes(2 * size + len("m9") + len("m10"), 0.0) == 5
    reader = SqliteOutcomeReader(store.path)
    assert reader.bounds() == (9, 10)
    reader.close()
    assert store.outcome_rows == 2
    store.close()


def test_a_version_1_spool_is_migrated_to_version_2_with_its_rows(tmp_path: Path) -> None:
    """A spool written by the previous release (user_version 1, no outcome tables) opens with its events, gains
    the outcome log and a spool id, and says user_version 2."""
    store = SqliteStore(tmp_path)
    store.open()
    store.insert(_events(4))
    store.close()
    db = sqlite3.connect(tmp_path / "spool.db")
    for table in ("outcomes", "key_states", "spool_meta"):
        db.execute(f"DROP TABLE {table}")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    again = SqliteStore(tmp_path)
    recovery = again.open()
    assert recovery.backlogs[("wk-a", Region.US)].events == 4
    again.delete([1], _stamp())
    reader = SqliteOutcomeReader(again.path)
    assert len(reader.spool_id()) == 16
    assert [r.message_id for r in reader.after(0, 10)] == ["m1"]
    reader.close()
    again.close()
    check = sqlite3.connect(tmp_path / "spool.db")
    assert check.execute("PRAGMA user_version").fetchone()[0] == 2
    check.close()


def test_the_memory_store_keeps_the_same_log() -> None:
    """The memory store numbers records from 1, logs only events it held, prunes oldest first, and its reader pages
    after a seq."""
    store = MemoryStore()
    store.insert(_events(4))
    store.delete([1, 2, 9], _stamp())
    reader = MemoryOutcomeReader(store)
    assert [(r.seq, r.message_id) for r in reader.after(0, 10)] == [(1, "m1"), (2, "m2")]
    assert [r.message_id for r in reader.after(1, 10)] == ["m2"]
    assert store.prune_outcomes(10**9, 1_700_000_100.5) == 2
    assert reader.bounds() == (0, 2)
