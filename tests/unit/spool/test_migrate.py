"""The spool's schema migration on real SQLite files: a version-0 spool moves to version 1 in small steps that leave
every row in exactly one table, a stop at any step resumes without loss or duplicates, a full disk is named as such,
and a spool of a newer schema is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sidecar.deadletters import main as dead_letters_main
from sidecar.errors import ConfigError
from sidecar.model import Region
from sidecar.spool import migrate
from sidecar.spool.offline import list_dead_letters
from sidecar.spool.schema import SCHEMA_VERSION, connect
from sidecar.spool.sqlite import SqliteStore
from tests.support.v0_spool import WRITE_KEYS, V0Spool, build, payload


class Interrupted(Exception):
    """Stands for a crash between two steps of the migration."""


def rows_by_seq(path: Path) -> tuple[dict[int, str], dict[int, str], dict[int, str], dict[int, str]]:
    """(events, events_v0, dead_letters, dead_letters_v0) as message id by seq, read straight from the file; a table
    that does not exist reads as empty."""
    db = sqlite3.connect(path)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        found = []
        for table in ("events", "events_v0", "dead_letters", "dead_letters_v0"):
            rows = db.execute(f"SELECT seq, message_id FROM {table}").fetchall() if table in tables else []
            found.append(dict(rows))
        return found[0], found[1], found[2], found[3]
    finally:
        db.close()


def assert_each_row_once(path: Path, built: V0Spool) -> None:
    """Every version-0 event and dead letter is in exactly one of the old and new tables, under its own seq."""
    events, events_v0, dead, dead_v0 = rows_by_seq(path)
    assert not events.keys() & events_v0.keys(), "an event is in both tables"
    assert not dead.keys() & dead_v0.keys(), "a dead letter is in both tables"
    assert events | events_v0 == built.events
    assert dead | dead_v0 == built.dead_letters


def assert_fully_migrated(directory: Path, built: V0Spool) -> None:
    """The spool opens at the current version with every event's key, region, content and seq, and every dead
    letter's reason, answer, replay mark and counted size."""
    store = SqliteStore(directory)
    recovery = store.open()
    try:
        assert recovery.last_seq == max(built.events.keys() | built.dead_letters.keys())
        seen = {}
        for key in recovery.backlogs:
            for event in store.read(key, 0, 10**9, 10**6):
                seen[event.seq] = event
        assert {seq: event.message_id for seq, event in seen.items()} == built.events
        for seq, event in seen.items():
            key = WRITE_KEYS[seq % len(WRITE_KEYS)]
            assert (event.write_key, event.region) == (key, Region.EU if key.endswith("-eu") else Region.US)
            assert event.payload == payload(seq, 600)
    finally:
        store.close()
    letters = {letter.event.seq: letter for letter in list_dead_letters(directory)}
    assert {seq: letter.event.message_id for seq, letter in letters.items()} == built.dead_letters
    assert all(letter.reason == "refused" and letter.response == "HTTP 400" for letter in letters.values())
    db = sqlite3.connect(directory / "spool.db")
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        replay = dict(db.execute("SELECT seq, replay FROM dead_letters").fetchall())
        assert replay == {seq: int(seq % 3 == 0) for seq in built.dead_letters}
        sizes = set(db.execute("SELECT size - length(payload) FROM dead_letters").fetchall())
        assert sizes == {(len("v0-00000000") + len("refused") + len("HTTP 400"),)}
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "events_v0" not in tables and "dead_letters_v0" not in tables
    finally:
        db.close()


def test_a_version_0_spool_moves_in_steps_and_leaves_no_write_ahead_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2 MiB version-0 spool moves in 64 KiB steps (logged as it goes): every event and dead letter keeps its seq,
    key, content and marks, and the WAL is truncated to nothing at the end instead of holding a copy of the spool."""
    monkeypatch.setattr(migrate, "CHUNK_BYTES", 64 * 2**10)
    monkeypatch.setattr(migrate, "PROGRESS_INTERVAL", 0.0)
    built = build(tmp_path, 2)
    with capture_logs() as logs:
        db = connect(tmp_path / "spool.db")
    wal_bytes = (tmp_path / "spool.db-wal").stat().st_size  # before close, which would remove it anyway
    db.close()
    progress = [entry for entry in logs if entry["event"] == "spool_migration_progress"]
    assert len(progress) > 30, "one step per 64 KiB of payload"
    assert logs[-1]["event"] == "spool_migration_finished"
    assert logs[-1]["events"] == len(built.events) and logs[-1]["dead_letters"] == len(built.dead_letters)
    assert wal_bytes == 0
    assert_fully_migrated(tmp_path, built)


def test_a_migration_stopped_between_steps_resumes_without_loss_or_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration stopped after some steps leaves each row in exactly one of the old and new tables and the version
    at 0; the next open resumes from there and ends with every row once."""
    monkeypatch.setattr(migrate, "CHUNK_BYTES", 64 * 2**10)
    built = build(tmp_path, 1)
    move = migrate._move
    steps = 0

    def move_then_stop(db: sqlite3.Connection, table: str) -> tuple[int, int]:
        nonlocal steps
        steps += 1
        if steps == 6:
            raise Interrupted
        return move(db, table)

    monkeypatch.setattr(migrate, "_move", move_then_stop)
    with pytest.raises(Interrupted):
        connect(tmp_path / "spool.db")
    events, events_v0, _, _ = rows_by_seq(tmp_path / "spool.db")
    assert events and events_v0, "stopped half-way"
    assert_each_row_once(tmp_path / "spool.db", built)
    monkeypatch.setattr(migrate, "_move", move)
    assert_fully_migrated(tmp_path, built)


def test_a_full_disk_during_a_step_is_named_with_the_room_needed_and_the_moved_rows_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the database cannot grow during a step (SQLite says the disk is full), the error names
    SIDECAR_SPOOL_DIR and the room the migration needs, not a failed rollback; the steps already done stay done and
    the next open with room finishes the migration."""
    monkeypatch.setattr(migrate, "CHUNK_BYTES", 256 * 2**10)
    built = build(tmp_path, 2)
    db = sqlite3.connect(tmp_path / "spool.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: a full disk, as SQLite reports it
    try:
        with pytest.raises(ConfigError) as raised:
            migrate.upgrade(db, tmp_path / "spool.db")
    finally:
        db.close()
    message = str(raised.value)
    assert "SIDECAR_SPOOL_DIR" in message and str(tmp_path / "spool.db") in message
    assert f"needs about {migrate.HEADROOM_BYTES / 2**20:.1f} MiB free" in message
    assert "rollback" not in message
    assert_each_row_once(tmp_path / "spool.db", built)
    assert_fully_migrated(tmp_path, built)


def test_a_spool_of_a_newer_schema_is_refused_naming_both_versions(tmp_path: Path) -> None:
    """A spool written by a later release (user_version 2) is not opened: the error names its version and the one
    this build knows, and the file is left as it was."""
    db = sqlite3.connect(tmp_path / "spool.db")
    db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, shard BLOB)")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    store = SqliteStore(tmp_path)
    with pytest.raises(ConfigError) as raised:
        store.open()
    store.close()
    message = str(raised.value)
    assert "SIDECAR_SPOOL_DIR" in message
    assert f"version {SCHEMA_VERSION + 1}" in message and f"version {SCHEMA_VERSION}," in message
    db = sqlite3.connect(tmp_path / "spool.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert [row[1] for row in db.execute("PRAGMA table_info(events)")] == ["seq", "shard"]
    db.close()


def test_a_new_spool_and_a_current_one_open_without_a_migration(tmp_path: Path) -> None:
    """An empty folder gets the current schema at once, and opening it again logs no migration."""
    with capture_logs() as logs:
        connect(tmp_path / "spool.db").close()
        connect(tmp_path / "spool.db").close()
    assert not [entry for entry in logs if entry["event"].startswith("spool_migration")]
    db = sqlite3.connect(tmp_path / "spool.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_the_dead_letters_command_refuses_a_spool_of_a_newer_schema_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``segment-sidecar dead-letters list`` and ``replay`` on a spool of a newer schema exit 2 with one message
    naming both versions, and touch nothing."""
    db = sqlite3.connect(tmp_path / "spool.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    for action in ("list", "replay"):
        assert dead_letters_main([action, "--spool-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"version {SCHEMA_VERSION + 1}" in err and f"version {SCHEMA_VERSION}," in err
