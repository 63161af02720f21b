"""Where spooled events live: SQLite on disk (the default) or memory, behind one small blocking interface.

On-disk layout (``$SIDECAR_SPOOL_DIR``)::

    spool.db        SQLite database in WAL mode, synchronous=FULL (a commit is fsync'd before it returns)
    spool.db-wal    its write-ahead log; spool.db-shm its shared-memory index (both managed by SQLite)
    lock            held with flock(2) while a sidecar runs, so two sidecars never share one spool

    table events        seq INTEGER PRIMARY KEY   -- order of acceptance; ids are never reused
                        write_key TEXT, region TEXT, message_id TEXT,
                        payload BLOB              -- the event's final JSON, exactly as sent to Segment
                        accepted_at REAL          -- Unix time of acknowledgement (give-up rules count from it)
    table dead_letters  the same columns, plus dead_at REAL, reason TEXT, response TEXT (Segment's answer),
                        replay INTEGER            -- 1 once `segment-sidecar dead-letters replay` asked for it

A row is inserted before its call is acknowledged and deleted only when Segment answered 2xx for its batch, or when it
moves to ``dead_letters`` in the same transaction. Every method here blocks: the :class:`~sidecar.spool.Spool` runs
them on one dedicated thread, which also serialises them.
"""

from __future__ import annotations

import fcntl
import operator
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


class Store(Protocol):
    """Blocking storage of spooled events and dead letters."""

    inline: bool
    """True when no method ever blocks (memory): the spool then calls them on the event loop, without a thread."""

    def open(self) -> Recovery:
        """Open or create; return the last seq used and the backlog of every key with events."""

    def close(self) -> None:
        """Release files; idempotent."""

    def insert(self, events: Sequence[SpooledEvent]) -> None:
        """Durably store events before they are acknowledged."""

    def delete(self, seqs: Sequence[int]) -> None:
        """Forget delivered events."""

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Move events to the dead letters, atomically."""

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

    def oldest(self, keys: Iterable[ShardKey]) -> dict[ShardKey, tuple[int, float]]:
        """The (seq, accepted_at) of each key's oldest event; keys without events are left out."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, write_key TEXT NOT NULL, region TEXT NOT NULL, message_id TEXT NOT NULL,
    payload BLOB NOT NULL, accepted_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY, write_key TEXT NOT NULL, region TEXT NOT NULL, message_id TEXT NOT NULL,
    payload BLOB NOT NULL, accepted_at REAL NOT NULL, dead_at REAL NOT NULL, reason TEXT NOT NULL,
    response TEXT NOT NULL, replay INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS events_by_key ON events (write_key, region, seq);
"""
_COLUMNS = "seq, write_key, region, message_id, payload, accepted_at"


# A row's parameters, built in C rather than by a per-event tuple display in Python; the Region (a StrEnum) binds as
# its text, so the stored value is the same "us"/"eu" as ``region.value``.
_params = operator.attrgetter("seq", "write_key", "region", "message_id", "payload", "accepted_at")

# Row counts of the cached INSERT statements; 1,024 rows x 6 columns stays under SQLite's 32,766 bound parameters.
_INSERT_SIZES = (1, 4, 16, 64, 256, 1024)
_INSERT_ROWS = {
    rows: f"INSERT OR REPLACE INTO events ({_COLUMNS}) SELECT * FROM (VALUES "
    + ",".join(["(?,?,?,?,?,?)"] * rows)
    + ") WHERE column1 IS NOT NULL"
    for rows in _INSERT_SIZES
}
_PADDING = (None,) * 6
_REGIONS = {region.value: region for region in Region}
"""Region by its stored text: a dict lookup, where ``Region(text)`` goes through the enum machinery for every row."""


def _insert_rows(db: sqlite3.Connection, events: Sequence[SpooledEvent]) -> None:
    """Insert up to 1,024 events with one statement (see :meth:`SqliteStore.insert`)."""
    rows = next(size for size in _INSERT_SIZES if size >= len(events))
    parameters = list(chain.from_iterable(map(_params, events)))
    if rows > len(events):
        parameters.extend(_PADDING * (rows - len(events)))
    try:
        db.execute(_INSERT_ROWS[rows], parameters)
    except sqlite3.Error as exc:
        if db.in_transaction:
            raise  # the caller's _Transaction rolls back and reports it
        raise SpoolFailure(f"spool write failed: {exc}") from exc


# One row: the selected rows' other columns as a JSON array (accepted_at as text with all 17 digits, since JSON would
# keep only 15) and their payloads concatenated in the same order.
_READ = f"""
SELECT json_group_array(json_array(seq, write_key, region, message_id, printf('%.17g', accepted_at), length(payload))),
       CAST(group_concat(payload, '') AS BLOB)
FROM (SELECT {_COLUMNS} FROM events WHERE {{where}} ORDER BY seq LIMIT ?)
"""


# One key's next rows, read as one aggregate row (see _READ); write_key and region are the caller's.
_READ_KEY = """
SELECT json_group_array(json_array(seq, message_id, printf('%.17g', accepted_at), length(payload))),
       CAST(group_concat(payload, '') AS BLOB)
FROM (SELECT seq, message_id, payload, accepted_at FROM events
      WHERE write_key = ? AND region = ? AND seq > ? ORDER BY seq LIMIT ?)
"""
_OLDEST = "SELECT seq, accepted_at FROM events WHERE write_key = ? AND region = ? ORDER BY seq LIMIT 1"


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


def _row(row: tuple[int, str, str, str, bytes, float]) -> SpooledEvent:
    return SpooledEvent(row[1], Region(row[2]), row[3], bytes(row[4]), row[5], row[0])


def connect_reader(path: Path) -> sqlite3.Connection:
    """A second connection that only reads: in WAL mode it reads beside the writer without blocking it."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA query_only=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with fsync'd commits; used by the spool and by the dead-letters command."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(_SCHEMA)
    return db


class SqliteStore:
    """The disk store: one SQLite database in WAL mode; see the module docstring for its layout."""

    inline = False

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._db: sqlite3.Connection | None = None
        self._lock_file: IO[bytes] | None = None
        self._reader: sqlite3.Connection | None = None  # per-key reads, on the spool's read thread
        self._row_bytes = 400  # payload bytes per row, as last read: how many rows a read asks for
        self._read_row_bytes = 400  # the same, for the read thread's per-key reads

    @property
    def path(self) -> Path:
        """The database file."""
        return self._directory / "spool.db"

    def open(self) -> Recovery:
        """Create the folder and database if needed, take the lock, and read every key's backlog.

        The backlogs come from one GROUP BY over the index on (write_key, region, seq): per key its count, payload
        bytes, smallest seq and that row's accepted_at (SQLite takes a bare column from the row that min() chose).
        """
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            lock_file = (self._directory / "lock").open("wb")
        except OSError as exc:
            raise SpoolFailure(f"cannot use spool folder {self._directory}: {exc.strerror}") from exc
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock_file.close()
            raise SpoolFailure(f"spool folder {self._directory} is in use by another sidecar (lock held)") from exc
        self._lock_file = lock_file
        try:
            self._db = connect(self.path)
            last = self._db.execute(
                "SELECT max(coalesce((SELECT max(seq) FROM events), 0),"
                " coalesce((SELECT max(seq) FROM dead_letters), 0))"
            ).fetchone()[0]
            rows = self._db.execute(
                "SELECT write_key, region, count(*), sum(length(payload)), min(seq), accepted_at"
                " FROM events GROUP BY write_key, region"
            ).fetchall()
            self._reader = connect_reader(self.path)
        except sqlite3.Error as exc:
            self.close()
            raise SpoolFailure(f"cannot open spool database {self.path}: {exc}") from exc
        backlogs = {
            (write_key, _REGIONS[region]): Backlog(int(count), int(size), int(seq), float(accepted_at))
            for write_key, region, count, size, seq, accepted_at in rows
        }
        return Recovery(int(last), backlogs)

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

    def insert(self, events: Sequence[SpooledEvent]) -> None:
        """Durably store a group commit's events: one statement and one fsync when they fit one statement.

        Why not ``executemany`` in a transaction: the sqlite3 module lets go of the GIL around every statement step
        and must win it back from the busy event loop thread after each one, up to one switch interval per step. Under
        load that made a 1,000-event commit take 140 ms instead of 8 ms, and a one-event commit 22 ms instead of
        0.3 ms (issue 6). A single statement in autocommit mode (its own transaction, fsync'd inside the step) needs
        the GIL back once; the statement's row count is rounded up to a few cached sizes and padded with NULL rows
        that its WHERE clause drops.
        """
        db = self._conn
        if len(events) <= _INSERT_SIZES[-1]:
            _insert_rows(db, events)
            return
        with _Transaction(db):
            for start in range(0, len(events), _INSERT_SIZES[-1]):
                _insert_rows(db, events[start : start + _INSERT_SIZES[-1]])

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
        """Insert into dead_letters and delete from events in one transaction."""
        db = self._conn
        with _Transaction(db):
            db.executemany(
                f"INSERT OR REPLACE INTO dead_letters ({_COLUMNS}, dead_at, reason, response)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        e.seq,
                        e.write_key,
                        e.region.value,
                        e.message_id,
                        e.payload,
                        e.accepted_at,
                        d.dead_at,
                        d.reason,
                        d.response,
                    )
                    for d in letters
                    for e in (d.event,)
                ],
            )
            db.executemany("DELETE FROM events WHERE seq = ?", [(d.event.seq,) for d in letters])

    def load(self, after_seq: int, max_bytes: int) -> list[SpooledEvent]:
        """Read ahead in seq order."""
        return self._read("seq > ?", (after_seq,), max_bytes)

    def load_shard(self, write_key: str, region: Region, after_seq: int, max_bytes: int) -> list[SpooledEvent]:
        """Read one shard's events back from disk (index events_by_key), for a shard that spilled."""
        return self._read("write_key = ? AND region = ? AND seq > ?", (write_key, region.value, after_seq), max_bytes)

    def _read(self, where: str, parameters: tuple[object, ...], max_bytes: int) -> list[SpooledEvent]:
        """Rows matching ``where`` in seq order until about ``max_bytes`` of payload (at least one row).

        Read as aggregate rows (the rows' columns as a JSON array, their payloads concatenated), not row by row: the
        sqlite3 module lets go of the GIL at every row it steps to, and under load winning it back made a read cost
        about 115 us per row instead of 6 (issue 6, backlog drain and spilled shards). Each query asks for as many rows
        as the payload size seen so far says max_bytes holds; a short guess is followed by another query.
        """
        loaded: list[SpooledEvent] = []
        size = 0
        query = _READ.format(where=where)
        while True:
            limit = (max_bytes - size) // self._row_bytes + 1
            columns, payloads = self._conn.execute(query, (*parameters, limit)).fetchone()
            if payloads is None:
                return loaded
            rows = orjson.loads(columns)
            view = memoryview(payloads)
            offset = 0
            read = 0
            for seq, write_key, region, message_id, accepted_at, length in rows:
                end = offset + length
                payload = view[offset:end].tobytes()
                loaded.append(SpooledEvent(write_key, _REGIONS[region], message_id, payload, float(accepted_at), seq))
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

    def count_for(self, write_key: str, region: Region, upto_seq: int) -> int:
        """Pending events of one shard up to a seq (for Flush, which does not wait for parked keys)."""
        row = self._conn.execute(
            "SELECT count(*) FROM events WHERE write_key = ? AND region = ? AND seq <= ?",
            (write_key, region.value, upto_seq),
        ).fetchone()
        return int(row[0])

    def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent]:
        """One key's next events from the index on (write_key, region, seq), on the read connection.

        Aggregate rows as in :meth:`_read`, each query asking for as many rows as the payload size seen so far says
        the budget holds (plus one, so that a good guess needs one query); rows past the budget are dropped.
        """
        if self._reader is None:
            raise SpoolFailure("the spool is not open")
        write_key, region = key
        loaded: list[SpooledEvent] = []
        size = 0
        try:
            while len(loaded) < max_events and size < max_bytes:
                limit = min(max_events - len(loaded), (max_bytes - size) // self._read_row_bytes + 1)
                columns, payloads = self._reader.execute(
                    _READ_KEY, (write_key, region.value, after_seq, limit)
                ).fetchone()
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
        except sqlite3.Error as exc:
            raise SpoolFailure(f"spool read failed: {exc}") from exc
        return loaded

    def oldest(self, keys: Iterable[ShardKey]) -> dict[ShardKey, tuple[int, float]]:
        """Each key's oldest event from the index (one row per key), on the writer's connection."""
        found: dict[ShardKey, tuple[int, float]] = {}
        try:
            for key in keys:
                row = self._conn.execute(_OLDEST, (key[0], key[1].value)).fetchone()
                if row is not None:
                    found[key] = (int(row[0]), float(row[1]))
        except sqlite3.Error as exc:
            raise SpoolFailure(f"spool read failed: {exc}") from exc
        return found

    def take_replays(self, first_seq: int) -> list[SpooledEvent]:
        """Re-queue dead letters marked for replay, under new seqs so the queue stays in order."""
        db = self._conn
        with _Transaction(db):
            rows = db.execute(f"SELECT {_COLUMNS} FROM dead_letters WHERE replay = 1 ORDER BY seq").fetchall()
            events = [
                SpooledEvent(row[1], Region(row[2]), row[3], bytes(row[4]), row[5], first_seq + i)
                for i, row in enumerate(rows)
            ]
            db.executemany(
                f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                [(e.seq, e.write_key, e.region.value, e.message_id, e.payload, e.accepted_at) for e in events],
            )
            db.executemany("DELETE FROM dead_letters WHERE seq = ?", [(row[0],) for row in rows])
        return events


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
                self._db.execute("ROLLBACK")
                raise SpoolFailure(f"spool write failed: {error}") from error
            return
        self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise SpoolFailure(f"spool write failed: {exc}") from exc


class MemoryStore:
    """Keeps events in dicts: ``SIDECAR_SPOOL=memory``, fast, and lost on exit (as Segment's SDKs are).

    Events are held twice by reference: in seq order (the old global read) and per key in seq order (insertion order
    is seq order, since seqs only grow), so that a key's reads and its oldest event never scan other keys.
    """

    inline = True

    def __init__(self) -> None:
        self._events: dict[int, SpooledEvent] = {}
        self._by_key: dict[ShardKey, dict[int, SpooledEvent]] = {}
        self.dead_letters: list[DeadLetter] = []

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
        """Keep dead letters in a list."""
        self.dead_letters.extend(letters)
        self.delete([letter.event.seq for letter in letters])

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

    def oldest(self, keys: Iterable[ShardKey]) -> dict[ShardKey, tuple[int, float]]:
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
        rows = db.execute(f"SELECT {_COLUMNS}, dead_at, reason, response FROM dead_letters ORDER BY seq").fetchall()
    finally:
        db.close()
    for row in rows:
        event = _row(row[:6])
        if write_key_hash is None or hash_of(event.write_key) == write_key_hash:
            yield DeadLetter(event, row[6], row[7], row[8])


def mark_for_replay(directory: Path, write_key_hash: str | None = None) -> int:
    """Mark dead letters for replay; a running sidecar re-queues them within seconds, a stopped one at start."""
    from sidecar.model import write_key_hash as hash_of  # noqa: PLC0415

    db = connect(directory / "spool.db")
    try:
        rows = db.execute("SELECT seq, write_key FROM dead_letters WHERE replay = 0").fetchall()
        chosen = [(seq,) for seq, key in rows if write_key_hash is None or hash_of(key) == write_key_hash]
        db.execute("BEGIN IMMEDIATE")
        db.executemany("UPDATE dead_letters SET replay = 1 WHERE seq = ?", chosen)
        db.execute("COMMIT")
    finally:
        db.close()
    return len(chosen)


def now() -> float:
    """Wall-clock time, for dead_at."""
    return time.time()
