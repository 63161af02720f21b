"""The SQLite store's reads and deletes: aggregate reads that stop at the byte budget, one-statement deletes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.model import Event, Region
from sidecar.spool import SqliteStore


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
    """load_shard reads one (write key, region) after a seq; another region of the same key is empty."""
    assert [e.seq for e in store.load_shard("wk-a", Region.US, 40, 10**6)] == [41, 43, 45, 47, 49, 51, 53, 55, 57, 59]
    assert [e.seq for e in store.load_shard("wk-b", Region.US, 0, 25)] == [2, 4, 6]
    assert store.load_shard("wk-a", Region.EU, 0, 10**6) == []


def test_deletes_of_scattered_and_consecutive_seqs(store: SqliteStore) -> None:
    """One key's interleaved seqs and a consecutive run are both forgotten, and nothing else is."""
    store.delete(list(range(1, 61, 2)))  # every event of wk-a
    assert store.count_for("wk-a", Region.US, 10**9) == 0
    assert store.count_for("wk-b", Region.US, 10**9) == 30
    store.delete(list(range(2, 21)))  # consecutive, half of them already gone
    assert [e.seq for e in store.load(0, 10**6)] == list(range(22, 61, 2))
    store.delete([])
