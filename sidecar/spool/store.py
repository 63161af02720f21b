"""Where spooled events live: SQLite on disk (the default) or memory, behind one small blocking interface.

On-disk layout (``$SIDECAR_SPOOL_DIR``, created 0700; every file in it 0600, whatever the umask)::

    spool.db        SQLite database in WAL mode, synchronous=FULL (a commit is fsync'd before it returns)
    spool.db-wal    its write-ahead log; spool.db-shm its shared-memory index (both managed by SQLite, and created
                    with spool.db's mode); the WAL is checkpointed and truncated at a size scaled to the spool's bound
    lock            held with flock(2) while a sidecar runs, so two sidecars never share one spool

    PRAGMA user_version = 1 (a version-0 spool, which stored the write key in every row, is migrated when opened)

    table keys          id INTEGER PRIMARY KEY AUTOINCREMENT   -- never reused, so a stale id never names another key
                        hash INTEGER     -- 64 bits of BLAKE2b over (region, write key): index keys_by_hash finds an id
                        write_key TEXT, region TEXT            -- each (write key, region) stored once, not per row
    table events        seq INTEGER PRIMARY KEY AUTOINCREMENT  -- order of acceptance; sqlite_sequence keeps the
                                                               -- highest seq ever stored, so none is reused after
                                                               -- deletes and a restart
                        key_id INTEGER    -- keys.id
                        message_id TEXT
                        payload BLOB      -- the event's final JSON, exactly as sent to Segment
                        accepted_at REAL  -- Unix time of acknowledgement (give-up rules count from it)
        index events_by_key (key_id), ordered by (key_id, seq) since seq is the rowid: a key's next events
    table dead_letters  seq INTEGER PRIMARY KEY (the event's seq), key_id, message_id, payload, accepted_at,
                        dead_at REAL, reason TEXT, response TEXT (Segment's answer),
                        size INTEGER      -- bytes counted against the dead letters' bound (payload, id, reason, answer)
                        replay INTEGER    -- 1 once `segment-sidecar dead-letters replay` asked for it
        index dead_letters_by_key (key_id); index dead_letters_by_age (dead_at, seq): pruning, oldest first

A row is inserted before its call is acknowledged and deleted only when Segment answered 2xx for its batch, or when it
moves to ``dead_letters`` in the same transaction. Rows are only ever inserted with new seqs (plain INSERT: a clash
fails the commit instead of overwriting an acknowledged row). Every method here blocks: the
:class:`~sidecar.spool.Spool` runs them on one dedicated writer thread, which also serialises them, except
:meth:`SqliteStore.read`, which uses a read-only connection of its own on a second thread (WAL lets it read beside the
writer). A key that has no events and no dead letters left is forgotten (row and cache) by the next :meth:`prune`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import operator
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import IO, Protocol

import orjson

from sidecar.errors import SpoolFailure
from sidecar.model import Region, ShardKey, SpooledEvent

FOLDER_MODE = 0o700
FILE_MODE = 0o600
SCHEMA_VERSION = 1
DEFAULT_WAL_PAGES = 1000
"""SQLite's own checkpoint threshold (pages); a spool bound below 64 MiB lowers it (see :class:`SqliteStore`)."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """What one (write key, region) has waiting in the spool, known without loading its events."""

    events: int
    """Undelivered, not dead-lettered events of this key."""
    bytes: int
    """Their payload bytes (``len(event.payload)`` summed)."""
    oldest_seq: int
    """The seq of the oldest of them."""
    oldest_accepted_at: float
    """Its acceptance time (Unix seconds, as ``SpooledEvent.accepted_at``)."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a store found when it opened: the highest seq it ever held and every key's backlog."""

    last_seq: int
    backlogs: dict[ShardKey, Backlog]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event given up on, with why and what Segment answered."""

    event: SpooledEvent
    dead_at: float
    reason: str
    response: str


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one pruning pass removed: dead letters past their age or beyond their bound, and unused keys."""

    by_age: int = 0
    by_bytes: int = 0
    bytes: int = 0
    keys: int = 0


def letter_size(letter: DeadLetter) -> int:
    """The bytes a dead letter counts against its bound: payload, message id, reason and Segment's answer."""
    event = letter.event
    return len(event.payload) + len(event.message_id) + len(letter.reason.encode()) + len(letter.response.encode())


class Store(Protocol):
    """Blocking storage of spooled events and dead letters."""

    inline: bool
    """True when no method ever blocks (memory): the spool then calls them on the event loop, without a thread."""

    on_disk: bool
    """True when :meth:`used_bytes` measures files on disk; else the spool counts payload bytes."""

    def open(self) -> Recovery:
        """Open or create; return the last seq used and the backlog of every key with events."""

    def close(self) -> None:
        """Release files; idempotent."""

    def insert(self, events: Sequence[SpooledEvent]) -> None:
        """Durably store events before they are acknowledged."""

    def delete(self, seqs: Sequence[int]) -> None:
        """Forget delivered events."""

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Move events to the dead letters, atomically (events no longer pending are skipped)."""

    def load(self, after_seq: int, max_bytes: int) -> list[SpooledEvent]:
        """Events with seq > after_seq in order, up to about max_bytes of payload (at least one)."""

    def load_shard(self, write_key: str, region: Region, after_seq: int, max_bytes: int) -> list[SpooledEvent]:
        """Events of one (write key, region) with seq > after_seq in order, up to about max_bytes (at least one)."""

    def count_for(self, write_key: str, region: Region, upto_seq: int) -> int:
        """How many pending events of one (write key, region) have seq <= upto_seq."""

    def take_replays(self, first_seq: int) -> list[SpooledEvent]:
        """Move dead letters marked for replay back into the queue with new seqs from first_seq; return them."""

    def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent]:
        """One key's events with seq > after_seq in order: at most max_events, and stopping before their payloads
        would exceed max_bytes (at least one if any). May run on a thread of its own, beside the writer's."""

    def settle(self, keys: Iterable[ShardKey]) -> dict[ShardKey, tuple[int, float]]:
        """After events of these keys left: the (seq, accepted_at) of each key's oldest event left; keys without
        events are left out (and become candidates for the next :meth:`prune`)."""

    def prune(self, max_dead_bytes: int, dead_before: float) -> Pruned:
        """Drop dead letters that died before ``dead_before``, then the oldest until they hold at most
        ``max_dead_bytes``; forget keys with nothing left."""

    @property
    def dead_bytes(self) -> int:
        """Bytes the dead letters count (see :func:`letter_size`)."""

    def used_bytes(self) -> int:
        """Bytes the store occupies: for SQLite, the database's pages in use (rows, keys, indexes) plus the WAL."""


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keys (id INTEGER PRIMARY KEY AUTOINCREMENT, hash INTEGER NOT NULL,"
    " write_key TEXT NOT NULL, region TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS keys_by_hash ON keys (hash)",
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, key_id INTEGER NOT NULL,"
    " message_id TEXT NOT NULL, payload BLOB NOT NULL, accepted_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_by_key ON events (key_id)",
    "CREATE TABLE IF NOT EXISTS dead_letters (seq INTEGER PRIMARY KEY, key_id INTEGER NOT NULL,"
    " message_id TEXT NOT NULL, payload BLOB NOT NULL, accepted_at REAL NOT NULL, dead_at REAL NOT NULL,"
    " reason TEXT NOT NULL, response TEXT NOT NULL, size INTEGER NOT NULL, replay INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS dead_letters_by_key ON dead_letters (key_id)",
    "CREATE INDEX IF NOT EXISTS dead_letters_by_age ON dead_letters (dead_at, seq)",
)
_COLUMNS = "seq, key_id, message_id, payload, accepted_at"

# A row's parameters, gathered in C rather than by a per-event tuple display in Python.
_shard = operator.attrgetter("write_key", "region")
_seq = operator.attrgetter("seq")
_message_id = operator.attrgetter("message_id")
_payload = operator.attrgetter("payload")
_accepted_at = operator.attrgetter("accepted_at")

# Row counts of the cached INSERT statements; 1,024 rows x 5 columns stays under SQLite's 32,766 bound parameters.
_INSERT_SIZES = (1, 4, 16, 64, 256, 1024)
_INSERT_ROWS = {
    rows: f"INSERT INTO events ({_COLUMNS}) SELECT * FROM (VALUES "
    + ",".join(["(?,?,?,?,?)"] * rows)
    + ") WHERE column1 IS NOT NULL"
    for rows in _INSERT_SIZES
}
_PADDING = (None,) * 5
_REGIONS = {region.value: region for region in Region}
"""Region by its stored text: a dict lookup, where ``Region(text)`` goes through the enum machinery for every row."""

# One row: the selected rows' other columns as a JSON array (accepted_at as text with all 17 digits, since JSON would
# keep only 15) and their payloads concatenated in the same order.
_READ = """
SELECT json_group_array(json_array(seq, key_id, message_id, printf('%.17g', accepted_at), length(payload))),
       CAST(group_concat(payload, '') AS BLOB)
FROM (SELECT seq, key_id, message_id, payload, accepted_at FROM events WHERE {where} ORDER BY seq LIMIT ?)
"""
# One key's next rows, read as one aggregate row (see _READ).
_READ_KEY = """
SELECT json_group_array(json_array(seq, message_id, printf('%.17g', accepted_at), length(payload))),
       CAST(group_concat(payload, '') AS BLOB)
FROM (SELECT seq, message_id, payload, accepted_at FROM events WHERE key_id = ? AND seq > ? ORDER BY seq LIMIT ?)
"""
_OLDEST = "SELECT seq, accepted_at FROM events WHERE key_id = ? ORDER BY seq LIMIT 1"
_USED_PAGES = (
    "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count, pragma_freelist_count, pragma_page_size"
)


def key_hash(write_key: str, region: str) -> int:
    """The 64-bit hash that finds a (write key, region)'s row in ``keys`` (the full key is compared as well)."""
    digest = hashlib.blake2b(f"{region}\0{write_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _insert_rows(db: sqlite3.Connection, parameters: list[object], rows: int) -> None:
    """Insert up to 1,024 events' parameters (5 per row) with one statement (see :meth:`SqliteStore.insert`)."""
    size = next(size for size in _INSERT_SIZES if size >= rows)
    if size > rows:
        parameters.extend(_PADDING * (size - rows))
    try:
        db.execute(_INSERT_ROWS[size], parameters)
    except sqlite3.Error as exc:
        if db.in_transaction:
            raise  # the caller's _Transaction rolls back and reports it
        raise SpoolFailure(f"spool write failed: {exc}") from exc


def _seq_ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Runs of consecutive seqs as (first, last): a batch of one write key is usually one run."""
    ranges: list[tuple[int, int]] = []
    ordered = sorted(seqs)
    if not ordered:
        return ranges
    first = last = ordered[0]
    for seq in ordered[1:]:
        if seq != last + 1:
            ranges.append((first, last))
            first = seq
        last = seq
    ranges.append((first, last))
    return ranges


def _private_file(path: Path) -> None:
    """Create ``path`` (empty) 0600 if missing, and make it 0600 if it exists: the umask plays no part."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def _private_folder(directory: Path) -> None:
    """Create the spool folder 0700 (its parents as the umask says) and make an existing one 0700 when it is ours."""
    directory.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    with contextlib.suppress(PermissionError):  # a mounted volume owned by someone else keeps its mode
        os.chmod(directory, FOLDER_MODE)


def connect_reader(path: Path) -> sqlite3.Connection:
    """A second connection that only reads: in WAL mode it reads beside the writer without blocking it."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA query_only=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with fsync'd commits and the current schema (migrated if older); used by the spool
    and by the dead-letters command. The database and its WAL are created 0600."""
    _private_file(path)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        _migrate(db)
    except BaseException:
        db.close()
        raise
    for suffix in ("-wal", "-shm"):  # created by SQLite with spool.db's mode; an older spool's may be wider
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", FILE_MODE)
    return db


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION` in one transaction (a new database, or version 0)."""
    if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
            if "write_key" in columns:
                _migrate_from_v0(db)
            else:
                for statement in _SCHEMA:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _migrate_from_v0(db: sqlite3.Connection) -> None:
    """Version 0 kept the write key and region in every row: move them to ``keys`` and keep every seq."""
    db.create_function("key_hash", 2, key_hash, deterministic=True)
    db.execute("ALTER TABLE events RENAME TO events_v0")
    db.execute("ALTER TABLE dead_letters RENAME TO dead_letters_v0")
    db.execute("DROP INDEX IF EXISTS events_by_key")
    for statement in _SCHEMA:
        db.execute(statement)
    db.execute(
        "INSERT INTO keys (hash, write_key, region) SELECT key_hash(write_key, region), write_key, region"
        " FROM (SELECT write_key, region FROM events_v0 UNION SELECT write_key, region FROM dead_letters_v0)"
    )
    join = (
        "JOIN keys k ON k.hash = key_hash(o.write_key, o.region) AND k.write_key = o.write_key AND k.region = o.region"
    )
    db.execute(
        f"INSERT INTO events ({_COLUMNS}) SELECT o.seq, k.id, o.message_id, o.payload, o.accepted_at"
        f" FROM events_v0 o {join} ORDER BY o.seq"
    )
    db.execute(
        "INSERT INTO dead_letters (seq, key_id, message_id, payload, accepted_at, dead_at, reason, response, size,"
        " replay) SELECT o.seq, k.id, o.message_id, o.payload, o.accepted_at, o.dead_at, o.reason, o.response,"
        " length(o.payload) + length(CAST(o.message_id AS BLOB)) + length(CAST(o.reason AS BLOB))"
        f" + length(CAST(o.response AS BLOB)), o.replay FROM dead_letters_v0 o {join}"
    )
    # The highest seq either table held stays used: the events table's sequence starts above it.
    db.execute("DELETE FROM sqlite_sequence WHERE name = 'events'")
    db.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'events', max("
        "coalesce((SELECT max(seq) FROM events_v0), 0), coalesce((SELECT max(seq) FROM dead_letters_v0), 0))"
    )
    db.execute("DROP TABLE events_v0")
    db.execute("DROP TABLE dead_letters_v0")


class SqliteStore:
    """The disk store: one SQLite database in WAL mode; see the module docstring for its layout.

    ``max_bytes`` (the spool's bound, when given) scales the WAL: it is checkpointed every ``max_bytes / 16`` bytes of
    pages (at most SQLite's default of 1,000 pages) and truncated back to that size after a checkpoint, so that the log
    stays a small part of what the bound allows.
    """

    inline = False
    on_disk = True

    def __init__(self, directory: Path, max_bytes: int | None = None) -> None:
        self._directory = directory
        self._max_bytes = max_bytes
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None  # per-key reads, on the spool's read thread
        self._lock_file: IO[bytes] | None = None
        self._row_bytes = 400  # payload bytes per row, as last read: how many rows a read asks for
        self._read_row_bytes = 400  # the same, for the read thread's per-key reads
        # Key ids by key and back, for keys with events (and recently emptied ones until the next prune). Written
        # only on the writer's thread; the read thread only looks up.
        self._key_ids: dict[ShardKey, int] = {}
        self._keys: dict[int, ShardKey] = {}
        self._unused: set[int] = set()  # ids of keys whose events all left; the next prune forgets the unused ones
        self._dead_bytes = 0

    @property
    def path(self) -> Path:
        """The database file."""
        return self._directory / "spool.db"

    @property
    def dead_bytes(self) -> int:
        """Bytes the dead letters count against their bound."""
        return self._dead_bytes

    def open(self) -> Recovery:
        """Create the folder and database if needed (private), take the lock, and read every key's backlog.

        The backlogs come from one GROUP BY over the index on key_id (ordered by seq): per key its count, payload
        bytes, smallest seq and that row's accepted_at (SQLite takes a bare column from the row that min() chose).
        """
        try:
            _private_folder(self._directory)
            lock_path = self._directory / "lock"
            _private_file(lock_path)
            lock_file = lock_path.open("wb")
        except OSError as exc:
            raise SpoolFailure(f"cannot use spool folder {self._directory}: {exc.strerror}") from exc
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock_file.close()
            raise SpoolFailure(f"spool folder {self._directory} is in use by another sidecar (lock held)") from exc
        self._lock_file = lock_file
        try:
            db = self._db = connect(self.path)
            self._size_wal(db)
            last = db.execute(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
                " coalesce((SELECT max(seq) FROM dead_letters), 0))"
            ).fetchone()[0]
            rows = db.execute(
                "SELECT k.id, k.write_key, k.region, g.count, g.size, g.seq, g.accepted_at FROM"
                " (SELECT key_id, count(*) AS count, sum(length(payload)) AS size, min(seq) AS seq, accepted_at"
                "  FROM events GROUP BY key_id) AS g JOIN keys AS k ON k.id = g.key_id"
            ).fetchall()
            self._dead_bytes = int(db.execute("SELECT coalesce(sum(size), 0) FROM dead_letters").fetchone()[0])
            # Keys left unused by a run that stopped before its next prune.
            db.execute(
                "DELETE FROM keys WHERE NOT EXISTS (SELECT 1 FROM events WHERE key_id = keys.id)"
                " AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE key_id = keys.id)"
            )
            self._reader = connect_reader(self.path)
        except sqlite3.Error as exc:
            self.close()
            raise SpoolFailure(f"cannot open spool database {self.path}: {exc}") from exc
        backlogs: dict[ShardKey, Backlog] = {}
        for key_id, write_key, region, count, size, seq, accepted_at in rows:
            key = (write_key, _REGIONS[region])
            self._key_ids[key] = key_id
            self._keys[key_id] = key
            backlogs[key] = Backlog(int(count), int(size), int(seq), float(accepted_at))
        return Recovery(int(last), backlogs)

    def _size_wal(self, db: sqlite3.Connection) -> None:
        pages = DEFAULT_WAL_PAGES
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        if self._max_bytes is not None:
            pages = max(32, min(DEFAULT_WAL_PAGES, self._max_bytes // 16 // page_size))
        db.execute(f"PRAGMA wal_autocheckpoint = {pages}")
        db.execute(f"PRAGMA journal_size_limit = {pages * page_size}")

    def close(self) -> None:
        """Close the database and release the lock."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise SpoolFailure("the spool is not open")
        return self._db

    def used_bytes(self) -> int:
        """The database's pages in use (rows, keys, indexes; free pages are reused before the file grows) plus the
        WAL and its index as they are on disk."""
        try:
            used = int(self._conn.execute(_USED_PAGES).fetchone()[0])
        except sqlite3.Error as exc:
            raise SpoolFailure(f"spool read failed: {exc}") from exc
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                used += os.stat(f"{self.path}{suffix}").st_size
        return used

    def insert(self, events: Sequence[SpooledEvent]) -> None:
        """Durably store a group commit's events: one statement and one fsync when they fit one statement.

        Why not ``executemany`` in a transaction: the sqlite3 module lets go of the GIL around every statement step
        and must win it back from the busy event loop thread after each one, up to one switch interval per step. Under
        load that made a 1,000-event commit take 140 ms instead of 8 ms, and a one-event commit 22 ms instead of
        0.3 ms (issue 6). A single statement in autocommit mode (its own transaction, fsync'd inside the step) needs
        the GIL back once; the statement's row count is rounded up to a few cached sizes and padded with NULL rows
        that its WHERE clause drops. A key seen for the first time (or again after it was forgotten) gets its row in
        ``keys`` in the same transaction.
        """
        db = self._conn
        ids = self._key_ids
        shards = list(map(_shard, events))
        missing = set(shards).difference(ids)
        if not missing and len(events) <= _INSERT_SIZES[-1]:
            _insert_rows(db, _parameters(events, shards, ids), len(events))
            return
        created: dict[ShardKey, int] = {}
        with _Transaction(db):
            for shard in missing:
                created[shard] = self._find_or_add_key(db, shard)
            lookup = {shard: created[shard] if shard in created else ids[shard] for shard in set(shards)}
            step = _INSERT_SIZES[-1]
            for start in range(0, len(events), step):
                chunk = events[start : start + step]
                _insert_rows(db, _parameters(chunk, shards[start : start + step], lookup), len(chunk))
        self._remember(created)

    def _find_or_add_key(self, db: sqlite3.Connection, key: ShardKey) -> int:
        write_key, region = key
        found = key_hash(write_key, region.value)
        for key_id, stored_key, stored_region in db.execute(
            "SELECT id, write_key, region FROM keys WHERE hash = ?", (found,)
        ):
            if stored_key == write_key and stored_region == region.value:
                return int(key_id)
        cursor = db.execute("INSERT INTO keys (hash, write_key, region) VALUES (?, ?, ?)", (found, write_key, region))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _key_of(self, db: sqlite3.Connection, key_id: int) -> ShardKey:
        key = self._keys.get(key_id)
        if key is None:
            row = db.execute("SELECT write_key, region FROM keys WHERE id = ?", (key_id,)).fetchone()
            if row is None:
                raise SpoolFailure(f"spool database {self.path} is inconsistent: key {key_id} is missing")
            key = (row[0], _REGIONS[row[1]])
        return key

    def _remember(self, keys: dict[ShardKey, int]) -> None:
        """Cache committed key ids (the writer's thread only)."""
        for key, key_id in keys.items():
            self._key_ids[key] = key_id
            self._keys[key_id] = key
            self._unused.discard(key_id)

    def delete(self, seqs: Sequence[int]) -> None:
        """Forget delivered events, in one statement (its own transaction): a range when the seqs are consecutive
        (one write key's events), else the list of seqs as a JSON array (many keys' events interleaved).

        One statement rather than one per event or per range, for the GIL's sake (see :meth:`insert`)."""
        ranges = _seq_ranges(seqs)
        if not ranges:
            return
        try:
            if len(ranges) == 1:
                self._conn.execute("DELETE FROM events WHERE seq BETWEEN ? AND ?", ranges[0])
            else:
                self._conn.execute(
                    "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?))", (orjson.dumps(list(seqs)),)
                )
        except sqlite3.Error as exc:
            raise SpoolFailure(f"spool write failed: {exc}") from exc

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Copy events still pending into dead_letters and delete them from events, in one transaction."""
        if not letters:
            return
        db = self._conn
        with _Transaction(db):
            seqs = orjson.dumps([letter.event.seq for letter in letters])
            pending = {
                seq
                for (seq,) in db.execute(
                    "SELECT seq FROM events WHERE seq IN (SELECT value FROM json_each(?))", (seqs,)
                )
            }
            moving = [letter for letter in letters if letter.event.seq in pending]
            db.executemany(
                "INSERT INTO dead_letters (seq, key_id, message_id, payload, accepted_at, dead_at, reason, response,"
                " size) SELECT seq, key_id, message_id, payload, accepted_at, ?, ?, ?, ? FROM events WHERE seq = ?",
                [(d.dead_at, d.reason, d.response, letter_size(d), d.event.seq) for d in moving],
            )
            db.execute("DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?))", (seqs,))
        self._dead_bytes += sum(map(letter_size, moving))

    def load(self, after_seq: int, max_bytes: int) -> list[SpooledEvent]:
        """Read ahead in seq order."""
        return self._read("seq > ?", (after_seq,), max_bytes)

    def load_shard(self, write_key: str, region: Region, after_seq: int, max_bytes: int) -> list[SpooledEvent]:
        """Read one shard's events back from disk (index events_by_key), for a shard that spilled."""
        key_id = self._key_ids.get((write_key, region))
        if key_id is None:
            return []
        return self._read("key_id = ? AND seq > ?", (key_id, after_seq), max_bytes)

    def _read(self, where: str, parameters: tuple[object, ...], max_bytes: int) -> list[SpooledEvent]:
        """Rows matching ``where`` in seq order until about ``max_bytes`` of payload (at least one row).

        Read as aggregate rows (the rows' columns as a JSON array, their payloads concatenated), not row by row: the
        sqlite3 module lets go of the GIL at every row it steps to, and under load winning it back made a read cost
        about 115 us per row instead of 6 (issue 6, backlog drain and spilled shards). Each query asks for as many rows
        as the payload size seen so far says max_bytes holds; a short guess is followed by another query.
        """
        db = self._conn
        loaded: list[SpooledEvent] = []
        size = 0
        query = _READ.format(where=where)
        try:
            while True:
                limit = (max_bytes - size) // self._row_bytes + 1
                columns, payloads = db.execute(query, (*parameters, limit)).fetchone()
                if payloads is None:
                    return loaded
                rows = orjson.loads(columns)
                view = memoryview(payloads)
                offset = 0
                read = 0
                for seq, key_id, message_id, accepted_at, length in rows:
                    end = offset + length
                    write_key, region = self._key_of(db, key_id)
                    payload = view[offset:end].tobytes()
                    loaded.append(SpooledEvent(write_key, region, message_id, payload, float(accepted_at), seq))
                    offset = end
                    read += 1
                    if size + offset >= max_bytes:
                        break
                size += offset
                self._row_bytes = max(1, offset // read)
                if size >= max_bytes or len(rows) < limit:
                    return loaded
                query = _READ.format(where=f"({where}) AND seq > ?")
                parameters = (*parameters, loaded[-1].seq)
        except sqlite3.Error as exc:
            raise SpoolFailure(f"spool read failed: {exc}") from exc

    def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent]:
        """One key's next events from the index on (key_id, seq), on the read connection.

        Aggregate rows as in :meth:`_read`, each query asking for as many rows as the payload size seen so far says
        the budget holds (plus one, so that a good guess needs one query); rows past the budget are dropped.
        """
        reader = self._reader
        if reader is None:
            raise SpoolFailure("the spool is not open")
        try:
            key_id = self._key_ids.get(key)
            if key_id is None:
                key_id = _lookup_key(reader, key)
                if key_id is None:
                    return []
            loaded = self._read_key(reader, key, key_id, after_seq, max_bytes, max_events)
            if not loaded:
                # The writer may have forgotten the key (it had nothing left) and given it a new id since.
                again = self._key_ids.get(key)
                if again is not None and again != key_id:
                    loaded = self._read_key(reader, key, again, after_seq, max_bytes, max_events)
        except sqlite3.Error as exc:
            raise SpoolFailure(f"spool read failed: {exc}") from exc
        return loaded

    def _read_key(
        self, reader: sqlite3.Connection, key: ShardKey, key_id: int, after_seq: int, max_bytes: int, max_events: int
    ) -> list[SpooledEvent]:
        write_key, region = key
        loaded: list[SpooledEvent] = []
        size = 0
        while len(loaded) < max_events and size < max_bytes:
            limit = min(max_events - len(loaded), (max_bytes - size) // self._read_row_bytes + 1)
            columns, payloads = reader.execute(_READ_KEY, (key_id, after_seq, limit)).fetchone()
            if payloads is None:
                break
            rows = orjson.loads(columns)
            view = memoryview(payloads)
            offset = 0
            for seq, message_id, accepted_at, length in rows:
                if loaded and size + length > max_bytes:
                    return loaded
                end = offset + length
                loaded.append(
                    SpooledEvent(write_key, region, message_id, view[offset:end].tobytes(), float(accepted_at), seq)
                )
                offset = end
                size += length
            self._read_row_bytes = max(1, offset // len(rows))
            if len(rows) < limit:
                break
            after_seq = loaded[-1].seq
        return loaded

    def settle(self, keys: Iterable[ShardKey]) -> dict[ShardKey, tuple[int, float]]:
        """Each key's oldest event from the index (one row per key), on the writer's connection."""
        found: dict[ShardKey, tuple[int, float]] = {}
        db = self._conn
        try:
            for key in keys:
                key_id = self._key_ids.get(key)
                if key_id is None:
                    continue
                row = db.execute(_OLDEST, (key_id,)).fetchone()
                if row is None:
                    self._unused.add(key_id)
                else:
                    found[key] = (int(row[0]), float(row[1]))
        except sqlite3.Error as exc:
            raise SpoolFailure(f"spool read failed: {exc}") from exc
        return found

    def count_for(self, write_key: str, region: Region, upto_seq: int) -> int:
        """Pending events of one shard up to a seq (for Flush, which does not wait for parked keys)."""
        key_id = self._key_ids.get((write_key, region))
        if key_id is None:
            return 0
        row = self._conn.execute("SELECT count(*) FROM events WHERE key_id = ? AND seq <= ?", (key_id, upto_seq))
        return int(row.fetchone()[0])

    def take_replays(self, first_seq: int) -> list[SpooledEvent]:
        """Re-queue dead letters marked for replay, under new seqs (from the spool's writer) so the queue stays in
        order; plain INSERT, so a seq in use fails the replay instead of overwriting an event."""
        db = self._conn
        size = 0
        keys: dict[ShardKey, int] = {}
        with _Transaction(db):
            rows = db.execute(
                "SELECT seq, key_id, message_id, payload, accepted_at, size FROM dead_letters WHERE replay = 1"
                " ORDER BY seq"
            ).fetchall()
            events: list[SpooledEvent] = []
            for i, (_, key_id, message_id, payload, accepted_at, letter_bytes) in enumerate(rows):
                key = self._key_of(db, key_id)
                keys[key] = key_id
                events.append(SpooledEvent(key[0], key[1], message_id, bytes(payload), accepted_at, first_seq + i))
                size += letter_bytes
            db.executemany(
                f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                [(e.seq, keys[e.shard], e.message_id, e.payload, e.accepted_at) for e in events],
            )
            db.execute(
                "DELETE FROM dead_letters WHERE seq IN (SELECT value FROM json_each(?))",
                (orjson.dumps([row[0] for row in rows]),),
            )
        self._dead_bytes -= size
        self._remember(keys)
        return events

    def prune(self, max_dead_bytes: int, dead_before: float) -> Pruned:
        """Dead letters past their age, then the oldest beyond their bound; then keys left with nothing."""
        db = self._conn
        try:
            too_old = db.execute("SELECT 1 FROM dead_letters WHERE dead_at < ? LIMIT 1", (dead_before,)).fetchone()
        except sqlite3.Error as exc:
            raise SpoolFailure(f"spool read failed: {exc}") from exc
        if too_old is None and self._dead_bytes <= max_dead_bytes and not self._unused:
            return Pruned()
        by_age = by_bytes = freed = 0
        touched = set(self._unused)
        forgotten: list[int] = []
        with _Transaction(db):
            for key_id, size in db.execute(
                "SELECT key_id, size FROM dead_letters WHERE dead_at < ?", (dead_before,)
            ).fetchall():
                by_age += 1
                freed += size
                touched.add(key_id)
            if by_age:
                db.execute("DELETE FROM dead_letters WHERE dead_at < ?", (dead_before,))
            excess = self._dead_bytes - freed - max_dead_bytes
            if excess > 0:
                chosen: list[int] = []
                for seq, key_id, size in db.execute("SELECT seq, key_id, size FROM dead_letters ORDER BY dead_at, seq"):
                    chosen.append(seq)
                    touched.add(key_id)
                    freed += size
                    excess -= size
                    if excess <= 0:
                        break
                by_bytes = len(chosen)
                db.execute(
                    "DELETE FROM dead_letters WHERE seq IN (SELECT value FROM json_each(?))", (orjson.dumps(chosen),)
                )
            if touched:
                forgotten = [
                    key_id
                    for (key_id,) in db.execute(
                        "DELETE FROM keys WHERE id IN (SELECT value FROM json_each(?))"
                        " AND NOT EXISTS (SELECT 1 FROM events WHERE key_id = keys.id)"
                        " AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE key_id = keys.id) RETURNING id",
                        (orjson.dumps(sorted(touched)),),
                    ).fetchall()
                ]
        self._dead_bytes -= freed
        self._unused.clear()
        for key_id in forgotten:
            key = self._keys.pop(key_id, None)
            if key is not None and self._key_ids.get(key) == key_id:
                del self._key_ids[key]
        return Pruned(by_age, by_bytes, freed, len(forgotten))


def _parameters(events: Sequence[SpooledEvent], shards: Sequence[ShardKey], ids: dict[ShardKey, int]) -> list[object]:
    """The events' rows as one flat parameter list, built in C (see ``_shard`` and friends)."""
    return list(
        chain.from_iterable(
            zip(
                map(_seq, events),
                map(ids.__getitem__, shards),
                map(_message_id, events),
                map(_payload, events),
                map(_accepted_at, events),
                strict=True,
            )
        )
    )


def _lookup_key(db: sqlite3.Connection, key: ShardKey) -> int | None:
    """A key's id from ``keys`` (on any connection), or None."""
    write_key, region = key
    for key_id, stored_key, stored_region in db.execute(
        "SELECT id, write_key, region FROM keys WHERE hash = ?", (key_hash(write_key, region.value),)
    ):
        if stored_key == write_key and stored_region == region.value:
            return int(key_id)
    return None


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error, with SQLite errors turned into SpoolFailure."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise SpoolFailure(f"spool write failed: {exc}") from exc

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                self._rollback()
                raise SpoolFailure(f"spool write failed: {error}") from error
            return
        self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise SpoolFailure(f"spool write failed: {exc}") from exc

    def _rollback(self) -> None:
        # SQLite may have rolled back already (a full disk, say): nothing left to undo then.
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")


class MemoryStore:
    """Keeps events in dicts: ``SIDECAR_SPOOL=memory``, fast, and lost on exit (as Segment's SDKs are).

    Events are held twice by reference: in seq order (the old global read) and per key in seq order (insertion order
    is seq order, since seqs only grow), so that a key's reads and its oldest event never scan other keys.
    """

    inline = True
    on_disk = False

    def __init__(self) -> None:
        self._events: dict[int, SpooledEvent] = {}
        self._by_key: dict[ShardKey, dict[int, SpooledEvent]] = {}
        self.dead_letters: list[DeadLetter] = []  # in the order they died
        self._dead_bytes = 0

    @property
    def dead_bytes(self) -> int:
        """Bytes the dead letters count against their bound."""
        return self._dead_bytes

    def used_bytes(self) -> int:
        """Payload bytes held (the memory spool is bounded by what its events weigh)."""
        return sum(len(event.payload) for event in self._events.values())

    def open(self) -> Recovery:
        """Nothing survives a restart."""
        return Recovery(0, {})

    def close(self) -> None:
        """Nothing to release."""

    def insert(self, events: Sequence[SpooledEvent]) -> None:
        """Keep the events."""
        for event in events:
            self._events[event.seq] = event
            key = (event.write_key, event.region)
            by_seq = self._by_key.get(key)
            if by_seq is None:
                by_seq = self._by_key[key] = {}
            by_seq[event.seq] = event

    def delete(self, seqs: Sequence[int]) -> None:
        """Forget delivered events."""
        for seq in seqs:
            event = self._events.pop(seq, None)
            if event is None:
                continue
            key = (event.write_key, event.region)
            by_seq = self._by_key[key]
            del by_seq[seq]
            if not by_seq:
                del self._by_key[key]

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Keep dead letters (of events still pending) in a list."""
        moving = [letter for letter in letters if letter.event.seq in self._events]
        self.dead_letters.extend(moving)
        self._dead_bytes += sum(map(letter_size, moving))
        self.delete([letter.event.seq for letter in moving])

    def prune(self, max_dead_bytes: int, dead_before: float) -> Pruned:
        """Drop dead letters past their age, then the oldest beyond the bound."""
        kept = [letter for letter in self.dead_letters if letter.dead_at >= dead_before]
        by_age = len(self.dead_letters) - len(kept)
        left = sum(map(letter_size, kept))
        freed = self._dead_bytes - left
        by_bytes = 0
        while by_bytes < len(kept) and left > max_dead_bytes:
            size = letter_size(kept[by_bytes])
            left -= size
            freed += size
            by_bytes += 1
        self.dead_letters = kept[by_bytes:]
        self._dead_bytes = left
        return Pruned(by_age, by_bytes, freed, 0)

    def load(self, after_seq: int, max_bytes: int) -> list[SpooledEvent]:
        """Read ahead in seq order (dict order is seq order: seqs only grow)."""
        loaded: list[SpooledEvent] = []
        size = 0
        for seq, event in self._events.items():
            if seq <= after_seq:
                continue
            loaded.append(event)
            size += len(event.payload)
            if size >= max_bytes:
                break
        return loaded

    def load_shard(self, write_key: str, region: Region, after_seq: int, max_bytes: int) -> list[SpooledEvent]:
        """One shard's events in seq order."""
        loaded: list[SpooledEvent] = []
        size = 0
        for seq, event in self._by_key.get((write_key, region), {}).items():
            if seq > after_seq:
                loaded.append(event)
                size += len(event.payload)
                if size >= max_bytes:
                    break
        return loaded

    def count_for(self, write_key: str, region: Region, upto_seq: int) -> int:
        """Pending events of one shard up to a seq."""
        return sum(1 for seq in self._by_key.get((write_key, region), {}) if seq <= upto_seq)

    def take_replays(self, first_seq: int) -> list[SpooledEvent]:
        """Memory dead letters are replayed only through the running process; nothing is marked."""
        return []

    def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent]:
        """One key's next events; skips only that key's events up to after_seq (those in flight)."""
        loaded: list[SpooledEvent] = []
        size = 0
        for seq, event in self._by_key.get(key, {}).items():
            if seq <= after_seq:
                continue
            if len(loaded) >= max_events or (loaded and size + len(event.payload) > max_bytes):
                break
            loaded.append(event)
            size += len(event.payload)
        return loaded

    def settle(self, keys: Iterable[ShardKey]) -> dict[ShardKey, tuple[int, float]]:
        """The first event of each key's dict."""
        found: dict[ShardKey, tuple[int, float]] = {}
        for key in keys:
            by_seq = self._by_key.get(key)
            if by_seq:
                event = next(iter(by_seq.values()))
                found[key] = (event.seq, event.accepted_at)
        return found


def list_dead_letters(directory: Path, write_key_hash: str | None = None) -> Iterable[DeadLetter]:
    """Read dead letters from a spool folder (works while a sidecar runs: WAL readers do not block it)."""
    from sidecar.model import write_key_hash as hash_of  # noqa: PLC0415 - keeps the module's imports minimal

    db = connect(directory / "spool.db")
    try:
        rows = db.execute(
            "SELECT d.seq, k.write_key, k.region, d.message_id, d.payload, d.accepted_at, d.dead_at, d.reason,"
            " d.response FROM dead_letters AS d JOIN keys AS k ON k.id = d.key_id ORDER BY d.seq"
        ).fetchall()
    finally:
        db.close()
    for seq, write_key, region, message_id, payload, accepted_at, dead_at, reason, response in rows:
        event = SpooledEvent(write_key, _REGIONS[region], message_id, bytes(payload), accepted_at, seq)
        if write_key_hash is None or hash_of(event.write_key) == write_key_hash:
            yield DeadLetter(event, dead_at, reason, response)


def mark_for_replay(directory: Path, write_key_hash: str | None = None) -> int:
    """Mark dead letters for replay; a running sidecar re-queues them within seconds, a stopped one at start."""
    from sidecar.model import write_key_hash as hash_of  # noqa: PLC0415

    db = connect(directory / "spool.db")
    try:
        keys = db.execute(
            "SELECT DISTINCT k.id, k.write_key FROM dead_letters AS d JOIN keys AS k ON k.id = d.key_id"
            " WHERE d.replay = 0"
        ).fetchall()
        chosen = [key_id for key_id, key in keys if write_key_hash is None or hash_of(key) == write_key_hash]
        db.execute("BEGIN IMMEDIATE")
        cursor = db.execute(
            "UPDATE dead_letters SET replay = 1 WHERE replay = 0 AND key_id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(chosen),),
        )
        db.execute("COMMIT")
    finally:
        db.close()
    return cursor.rowcount


def now() -> float:
    """Wall-clock time, for dead_at."""
    return time.time()
