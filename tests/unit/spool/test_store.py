"""The SQLite store: aggregate reads that stop at the byte budget, one-statement deletes, keys stored once, the
version-0 migration, seqs never reused, private files."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.errors import SpoolFailure
from sidecar.model import Backlog, Event, Region
from sidecar.spool import SqliteStore
from sidecar.spool.offline import list_dead_letters


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """An open store holding 60 events of two write keys, interleaved, with 10-byte payloads."""
    opened = SqliteStore(tmp_path)
    opened.open()
    opened.insert(
        [
            Event("wk-a" if seq % 2 else "wk-b", Region.US, f"m{seq}", b"%010d" % seq, 1_700_000_000.123456, seq)
            for seq in range(1, 61)
        ]
    )
    yield opened
    opened.close()


def test_a_read_stops_at_the_first_row_that_reaches_the_budget(store: SqliteStore) -> None:
    """Rows come in seq order until their payloads reach max_bytes, even when the store's size guess is far off."""
    loaded = store.load(0, 300)  # 30 payloads of 10 bytes; the first query guesses 400 bytes a row
    assert [e.seq for e in loaded] == list(range(1, 31))
    assert loaded[4].payload == b"0000000005" and loaded[4].message_id == "m5"
    assert loaded[4].accepted_at == 1_700_000_000.123456, "all 17 digits survive the JSON aggregate"
    assert [e.seq for e in store.load(55, 10**6)] == [56, 57, 58, 59, 60]
    assert [e.seq for e in store.load(0, 1)] == [1], "at least one row"
    assert store.load(60, 10**6) == []


def test_a_shard_read_returns_only_its_key_in_order(store: SqliteStore) -> None:
    """read() returns one (write key, region) after a seq; another region of the same key is empty."""
    expected = [41, 43, 45, 47, 49, 51, 53, 55, 57, 59]
    assert [e.seq for e in store.read(("wk-a", Region.US), 40, 10**6, 10**6)] == expected
    assert [e.seq for e in store.read(("wk-b", Region.US), 0, 30, 100)] == [2, 4, 6]
    assert store.read(("wk-a", Region.EU), 0, 10**6, 10**6) == []


def test_deletes_of_scattered_and_consecutive_seqs(store: SqliteStore) -> None:
    """One key's interleaved seqs and a consecutive run are both forgotten, and nothing else is."""
    store.delete(list(range(1, 61, 2)))  # every event of wk-a
    assert store.read(("wk-a", Region.US), 0, 10**9, 10**6) == []
    assert len(store.read(("wk-b", Region.US), 0, 10**9, 10**6)) == 30
    store.delete(list(range(2, 21)))  # consecutive, half of them already gone
    assert [e.seq for e in store.load(0, 10**6)] == list(range(22, 61, 2))
    store.delete([])


def test_a_version_0_spool_is_migrated_with_every_event_and_dead_letter(tmp_path: Path) -> None:
    """A spool written before the keys table (write key in every row) opens with its events, dead letters and seqs."""
    db = sqlite3.connect(tmp_path / "spool.db")
    db.executescript(
        """
        CREATE TABLE events (seq INTEGER PRIMARY KEY, write_key TEXT NOT NULL, region TEXT NOT NULL,
            message_id TEXT NOT NULL, payload BLOB NOT NULL, accepted_at REAL NOT NULL);
        CREATE TABLE dead_letters (seq INTEGER PRIMARY KEY, write_key TEXT NOT NULL, region TEXT NOT NULL,
            message_id TEXT NOT NULL, payload BLOB NOT NULL, accepted_at REAL NOT NULL, dead_at REAL NOT NULL,
            reason TEXT NOT NULL, response TEXT NOT NULL, replay INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX events_by_key ON events (write_key, region, seq);
        INSERT INTO events VALUES (3, 'wk-a', 'us', 'm3', x'7b7d', 10.5), (5, 'wk-b', 'eu', 'm5', x'5b5d', 11.5),
            (6, 'wk-a', 'us', 'm6', x'3132', 12.5);
        INSERT INTO dead_letters VALUES (9, 'wk-c', 'us', 'm9', x'3939', 9.0, 20.0, 'refused', 'HTTP 400', 0);
        """
    )
    db.close()
    store = SqliteStore(tmp_path)
    recovery = store.open()
    try:
        assert recovery.last_seq == 9, "seqs continue above both tables"
        assert recovery.backlogs == {
            ("wk-a", Region.US): Backlog(2, 4, 3, 10.5),
            ("wk-b", Region.EU): Backlog(1, 2, 5, 11.5),
        }
        assert [(e.seq, e.payload) for e in store.read(("wk-a", Region.US), 0, 100, 10)] == [(3, b"{}"), (6, b"12")]
        assert [e.message_id for e in store.load(0, 100)] == ["m3", "m5", "m6"]
    finally:
        store.close()
    letters = list(list_dead_letters(tmp_path))
    assert [(d.event.seq, d.event.write_key, d.reason, d.response) for d in letters] == [
        (9, "wk-c", "refused", "HTTP 400")
    ]
    again = SqliteStore(tmp_path)
    assert again.open().last_seq == 9, "opening a migrated spool again changes nothing"
    assert again.dead_bytes == 2 + 2 + 7 + 8
    again.close()


def test_a_key_is_stored_once_however_many_events_carry_it(tmp_path: Path) -> None:
    """Twenty events with one 1 MiB write key take about one copy of the key on disk, not twenty (issue 13.4)."""
    key = "k" * 2**20
    store = SqliteStore(tmp_path)
    store.open(8 * 2**20)  # sized for an 8 MiB bound: the WAL counts as 512 KiB from the start
    try:
        store.insert([Event(key, Region.US, f"m{seq}", b"{}", 1.0, seq) for seq in range(1, 21)])
        assert store.used_bytes() < 3 * 2**20
        assert [e.seq for e in store.read((key, Region.US), 0, 10**6, 100)] == list(range(1, 21))
    finally:
        store.close()


def test_a_key_with_nothing_left_is_forgotten_and_found_again(store: SqliteStore) -> None:
    """Once a key's events are gone a prune drops its row; new events of that key get a new row and read back."""
    store.delete(list(range(1, 61, 2)))  # every event of wk-a
    assert store.oldest([("wk-a", Region.US), ("wk-b", Region.US)]) == {("wk-b", Region.US): (2, 1_700_000_000.123456)}
    assert store.prune(10**9, 0.0).keys == 1
    assert store.read(("wk-a", Region.US), 0, 10**6, 100) == []
    store.insert([Event("wk-a", Region.US, "m61", b"again", 2.0, 61)])
    assert [(e.seq, e.payload) for e in store.read(("wk-a", Region.US), 0, 10**6, 100)] == [(61, b"again")]
    assert len(store.read(("wk-a", Region.US), 0, 10**9, 10**6)) == 1


def test_no_seq_is_reused_after_the_newest_events_are_deleted_and_the_spool_reopens(tmp_path: Path) -> None:
    """The highest seq ever stored survives deleting every row and a restart (sqlite_sequence), so none is reused."""
    store = SqliteStore(tmp_path)
    store.open()
    store.insert([Event("wk", Region.US, f"m{seq}", b"{}", 1.0, seq) for seq in range(1, 6)])
    store.delete([1, 2, 3, 4, 5])
    store.close()
    again = SqliteStore(tmp_path)
    assert again.open().last_seq == 5
    again.close()


def test_a_seq_in_use_is_never_overwritten(store: SqliteStore) -> None:
    """An insert that reuses a pending event's seq fails instead of replacing the acknowledged row."""
    with pytest.raises(SpoolFailure):
        store.insert([Event("wk-a", Region.US, "intruder", b"x", 1.0, 5)])
    assert [e.message_id for e in store.read(("wk-a", Region.US), 4, 10, 1)] == ["m5"]


def test_the_spool_folder_and_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """With umask 0 the folder is 0700 and the database, its WAL and shm and the lock are 0600; an existing, wider
    folder and database are tightened (issue 13.8)."""
    old = os.umask(0)
    try:
        fresh = tmp_path / "fresh"
        store = SqliteStore(fresh)
        store.open()
        store.insert([Event("wk", Region.US, "m1", b"{}", 1.0, 1)])
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in fresh.iterdir()}
        store.close()
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
        assert modes == {"spool.db": 0o600, "spool.db-wal": 0o600, "spool.db-shm": 0o600, "lock": 0o600}
        older = tmp_path / "older"
        older.mkdir(mode=0o755)
        (older / "spool.db").touch(mode=0o644)
        store = SqliteStore(older)
        store.open()
        store.close()
        assert stat.S_IMODE(older.stat().st_mode) == 0o700
        assert stat.S_IMODE((older / "spool.db").stat().st_mode) == 0o600
    finally:
        os.umask(old)
