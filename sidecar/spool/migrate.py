"""Bring a spool's schema to :data:`~sidecar.spool.schema.SCHEMA_VERSION` when it opens, or refuse a newer one.

Version 0 kept the write key and region in every row; version 1 keeps each (write key, region) once, in ``keys``;
version 2 adds the outcome log, the keys' stored states and the spool's id (new tables only: one transaction).
The migration moves the rows in steps, each its own small transaction, so that it needs little room and survives a
crash at any point::

    begin       one transaction: events -> events_v0, dead_letters -> dead_letters_v0, drop version 0's index,
                create version 1's tables, start the events' sequence above the highest seq either table holds
    move        repeated: one transaction takes about CHUNK_BYTES of payload (the lowest seqs) from events_v0, adds
                their write keys to ``keys``, inserts the rows into ``events`` with their seqs and deletes them from
                events_v0; then the WAL is checkpointed and truncated. The same for dead_letters_v0.
    finish      one transaction: drop the (empty) version 0 tables, user_version = 1

A row is in exactly one of the two tables at every commit, so a crash loses nothing and duplicates nothing; the next
open resumes with the rows still in the ``_v0`` tables (user_version stays 0 until ``finish``, and the ``events_v0``
table marks a migration under way). The pages each move frees are reused by the next, and the WAL is emptied after
each, so the files grow by about three chunks at most (measured: 9-12 MiB with 4 MiB chunks, whatever the spool's
size; :data:`HEADROOM_BYTES` asks for four), where a single transaction needed three times the spool more (the copy,
its WAL, and the old rows until the end) and left the WAL at twice the spool.

Delivery starts when the migration ends: the gRPC port is bound after the spool opens. A GiB takes 30-40 s on a
2-core machine (90 s with its cores saturated), logged as ``spool_migration_progress`` every few seconds; a start-up
probe that restarts the container loses only the step under way, and each start goes on where the last one stopped.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

from sidecar.errors import ConfigError
from sidecar.spool.schema import COLUMNS, OUTCOME_SCHEMA, SCHEMA, SCHEMA_VERSION, key_hash

log = structlog.get_logger("sidecar.spool")

CHUNK_BYTES = 4 * 2**20
"""Payload bytes one migration step moves (it stops at the row that reaches them)."""
CHUNK_ROWS = 20_000
"""Rows one step moves at most, however small they are."""
HEADROOM_BYTES = 4 * CHUNK_BYTES
"""Free disk the migration needs beside the spool's files: a chunk's new rows in the database before the pages it
frees are reused by the next, the new rows and the freed pages in the WAL until the checkpoint, and a margin for
``keys``, the index and SQLite's shared-memory file."""
PROGRESS_INTERVAL = 5.0
"""Seconds between two ``spool_migration_progress`` log lines."""

_KEY_JOIN = (
    "JOIN keys k ON k.hash = key_hash(o.write_key, o.region) AND k.write_key = o.write_key AND k.region = o.region"
)
_MOVES = {  # SQL assembled from constant names and columns, never from input (S608)
    "events": (
        f"INSERT INTO events ({COLUMNS}) SELECT o.seq, k.id, o.message_id, o.payload, o.accepted_at"  # noqa: S608
        f" FROM events_v0 o {_KEY_JOIN} WHERE o.seq <= ? ORDER BY o.seq"
    ),
    "dead_letters": (
        "INSERT INTO dead_letters (seq, key_id, message_id, payload, accepted_at, dead_at, reason, response, size,"  # noqa: S608
        " replay) SELECT o.seq, k.id, o.message_id, o.payload, o.accepted_at, o.dead_at, o.reason, o.response,"
        " length(o.payload) + length(CAST(o.message_id AS BLOB)) + length(CAST(o.reason AS BLOB))"
        f" + length(CAST(o.response AS BLOB)), o.replay FROM dead_letters_v0 o {_KEY_JOIN} WHERE o.seq <= ?"
        " ORDER BY o.seq"
    ),
}


def upgrade(db: sqlite3.Connection, path: Path) -> None:
    """Bring ``path``'s database (open as ``db``, in WAL mode) to the current schema: create it when new, migrate
    or resume a version-0 spool, and refuse one newer than this build (:class:`~sidecar.errors.ConfigError`, which
    the command turns into exit 2). A full disk is reported as such, with the room the migration needs."""
    version = _user_version(db)
    if version > SCHEMA_VERSION:
        raise ConfigError(
            [
                f"SIDECAR_SPOOL_DIR: {path} has spool schema version {version}, newer than version {SCHEMA_VERSION},"
                " the newest this build of segment-sidecar knows; run the release that wrote it (or a later one),"
                " or point SIDECAR_SPOOL_DIR at another folder"
            ]
        )
    if version == SCHEMA_VERSION:
        return
    if version == 1:
        _add_outcomes(db)
        return
    tables = _tables(db)
    if "events_v0" not in tables and "write_key" not in _columns(db, "events"):
        with _step(db):
            if _user_version(db) < SCHEMA_VERSION and "events_v0" not in _tables(db):  # another opener may be first
                for statement in SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return
    _migrate_from_v0(db, path)


def _add_outcomes(db: sqlite3.Connection) -> None:
    """Version 1 to 2: new tables only, no row moves, so one small transaction (another opener may be first)."""
    with _step(db):
        if _user_version(db) == 1:
            for statement in OUTCOME_SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _migrate_from_v0(db: sqlite3.Connection, path: Path) -> None:
    db.create_function("key_hash", 2, key_hash, deterministic=True)
    secure_delete = int(db.execute("PRAGMA secure_delete").fetchone()[0])
    try:
        _checkpoint(db)  # a WAL left by an earlier, failed attempt gives its room back first
        _check_room(db, path)
        # Where SQLite zeroes freed pages (Debian's build does), dropping version 0's index would write zeros over all
        # of it in one step, a WAL as large as the index. FAST zeroes only what costs no extra I/O: the index's pages
        # (write keys and seqs, no payloads) may stay on the free list unzeroed until reused, as on a build that
        # never zeroes.
        db.execute("PRAGMA secure_delete = FAST")
        # Each step is atomic whatever the setting: a step that a power loss takes back is moved again at the next
        # open. The checkpoint after each step syncs what its commit did not.
        db.execute("PRAGMA synchronous = NORMAL")
        _move_all(db, path)
    except sqlite3.Error as exc:
        if _disk_full(exc, path):
            raise _no_room(path, HEADROOM_BYTES) from exc
        raise
    finally:
        db.execute(f"PRAGMA secure_delete = {secure_delete}")
        db.execute("PRAGMA synchronous = FULL")


def _move_all(db: sqlite3.Connection, path: Path) -> None:
    started = time.monotonic()
    log.info("spool_migration_started", path=str(path), from_version=0, to_version=SCHEMA_VERSION, bytes=_size(path))
    with _step(db):
        if _user_version(db) == 0 and "events_v0" not in _tables(db):
            _begin(db)
    _checkpoint(db)
    moved = {"events": 0, "dead_letters": 0}
    moved_bytes = 0
    last_report = started
    for table in moved:
        while True:
            with _step(db):
                rows, size = _move(db, table)
            if not rows:
                break
            _checkpoint(db)
            moved[table] += rows
            moved_bytes += size
            if time.monotonic() - last_report >= PROGRESS_INTERVAL:
                last_report = time.monotonic()
                log.info(
                    "spool_migration_progress",
                    events=moved["events"],
                    dead_letters=moved["dead_letters"],
                    payload_bytes=moved_bytes,
                    seconds=round(last_report - started, 1),
                )
    with _step(db):
        # Every row has moved (they are never added to, so empty stays empty); checked all the same, as a drop of a
        # table with rows in it would lose them.
        tables = _tables(db)
        if "events_v0" in tables and not any(
            db.execute(f"SELECT 1 FROM {name} LIMIT 1").fetchone()  # noqa: S608 - our names
            for name in ("events_v0", "dead_letters_v0")
            if name in tables
        ):
            db.execute("DROP TABLE events_v0")
            db.execute("DROP TABLE IF EXISTS dead_letters_v0")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    _checkpoint(db)
    log.info(
        "spool_migration_finished",
        events=moved["events"],
        dead_letters=moved["dead_letters"],
        payload_bytes=moved_bytes,
        seconds=round(time.monotonic() - started, 1),
    )


def _begin(db: sqlite3.Connection) -> None:
    """The first step: rename version 0's tables, create version 1's, and keep every seq ever used unused."""
    db.execute("ALTER TABLE events RENAME TO events_v0")
    if "dead_letters" in _tables(db):
        db.execute("ALTER TABLE dead_letters RENAME TO dead_letters_v0")
    else:
        db.execute("CREATE TABLE dead_letters_v0 (seq INTEGER PRIMARY KEY)")
    # Version 0's index holds every row's write key; dropped now, its pages take the first moves.
    db.execute("DROP INDEX IF EXISTS events_by_key")
    for statement in SCHEMA:
        db.execute(statement)
    # The highest seq either table holds stays used: the events table's sequence starts above it.
    db.execute("DELETE FROM sqlite_sequence WHERE name = 'events'")
    db.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'events', max("
        "coalesce((SELECT max(seq) FROM events_v0), 0), coalesce((SELECT max(seq) FROM dead_letters_v0), 0))"
    )


def _move(db: sqlite3.Connection, table: str) -> tuple[int, int]:
    """Move the next chunk of ``table``'s version-0 rows (lowest seqs first); return (rows, payload bytes) moved."""
    if f"{table}_v0" not in _tables(db):  # another opener (the dead-letters command) finished first
        return 0, 0
    cursor = db.execute(f"SELECT seq, length(payload) FROM {table}_v0 ORDER BY seq")  # noqa: S608 - our names
    rows = size = 0
    last = None
    try:
        for seq, length in cursor:
            rows += 1
            size += length
            last = seq
            if size >= CHUNK_BYTES or rows >= CHUNK_ROWS:
                break
    finally:
        cursor.close()
    if last is None:
        return 0, 0
    # DISTINCT before the hash: one call of the Python function per key, not per row.
    db.execute(
        "INSERT INTO keys (hash, write_key, region) SELECT key_hash(o.write_key, o.region), o.write_key, o.region"  # noqa: S608
        f" FROM (SELECT DISTINCT write_key, region FROM {table}_v0 WHERE seq <= ?) o WHERE NOT EXISTS (SELECT 1 FROM"
        " keys k WHERE k.hash = key_hash(o.write_key, o.region) AND k.write_key = o.write_key AND k.region = o.region)",
        (last,),
    )
    db.execute(_MOVES[table], (last,))
    db.execute(f"DELETE FROM {table}_v0 WHERE seq <= ?", (last,))  # noqa: S608 - our names
    return rows, size


@contextlib.contextmanager
def _step(db: sqlite3.Connection) -> Iterator[None]:
    """One transaction of the migration: committed whole or not at all."""
    try:
        db.execute("BEGIN IMMEDIATE")
        yield
        db.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (a full disk, say): a second ROLLBACK would hide the real error.
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def _checkpoint(db: sqlite3.Connection) -> None:
    """Copy the WAL into the database and truncate it to nothing (a reader elsewhere may keep part of it: fine)."""
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _check_room(db: sqlite3.Connection, path: Path) -> None:
    """Refuse to begin (or resume) without the headroom a step needs: better one clear message now than a full disk
    halfway. A small spool needs less than the full headroom."""
    page_size, pages, free_pages = (
        int(db.execute(f"PRAGMA {name}").fetchone()[0]) for name in ("page_size", "page_count", "freelist_count")
    )
    needed = min(HEADROOM_BYTES, 3 * (pages - free_pages) * page_size + 2**20)
    if _free(path) + free_pages * page_size < needed:
        raise _no_room(path, needed)


def _no_room(path: Path, needed: int) -> ConfigError:
    return ConfigError(
        [
            f"SIDECAR_SPOOL_DIR: no room to migrate the spool {path} from schema version 0 to {SCHEMA_VERSION}:"
            f" it needs about {_mib(needed)} free beside the spool's files ({_size_text(path)}), and"
            f" {_mib(_free(path))} is free; free some space or grow the volume and start again (the migration"
            " resumes where it stopped)"
        ]
    )


def _disk_full(exc: sqlite3.Error, path: Path) -> bool:
    """SQLITE_FULL; or an I/O error (SQLite reports a failed write to its shared-memory index so) with less free than
    a step needs."""
    code = int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF
    return code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _free(path) < CHUNK_BYTES)


def _free(path: Path) -> int:
    stat = os.statvfs(path.parent)
    return stat.f_bavail * stat.f_frsize


def _size(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            total += os.stat(f"{path}{suffix}").st_size
    return total


def _size_text(path: Path) -> str:
    return f"{_mib(_size(path))} now"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
