"""The disk store: one SQLite database in WAL mode, whose layout is drawn in :mod:`sidecar.spool.store`.

A row is inserted before its call is acknowledged (one statement and one fsync per group commit), deleted when
Segment took it, and moved to the dead letters in one transaction. Its files, schema and shared pieces are in
:mod:`sidecar.spool.schema`, its reads in :mod:`sidecar.spool.reads`, its disk accounting in :mod:`sidecar.spool.disk`.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Container, Iterable, Sequence
from pathlib import Path
from typing import IO

import orjson

from sidecar.errors import SpoolFailure
from sidecar.model import Backlog, ShardKey, SpooledEvent
from sidecar.outcomes.records import Stamp
from sidecar.spool import disk, outcome_rows, reads, writes
from sidecar.spool.schema import (
    COLUMNS,
    REGIONS,
    Transaction,
    connect,
    connect_reader,
    key_hash,
    lookup_key,
    private_file,
    private_folder,
)
from sidecar.spool.store import DeadLetter, Pruned, Recovery, letter_size

_OLDEST = "SELECT seq, accepted_at FROM events WHERE key_id = ? ORDER BY seq LIMIT 1"


class SqliteStore(outcome_rows.LogRows):
    """The disk store: one SQLite database in WAL mode; see :mod:`sidecar.spool.store` for its layout.

    The spool's bound, given to :meth:`open`, scales the WAL: it is checkpointed every ``max_bytes / 16`` bytes of
    pages (at least 32 pages, at most SQLite's default of 1,000) and truncated back to that size after a checkpoint,
    so that the log stays a small part of what the bound allows.
    """

    inline = False
    on_disk = True

    def __init__(self, directory: Path) -> None:
        self._directory = directory
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
        self._wal_bytes = 0  # what the WAL may grow to between checkpoints (counted as used from the start)
        self.outcome_rows = 0  # records the outcome log holds, and their bytes
        self.outcome_bytes = 0

    @property
    def path(self) -> Path:
        """The database file."""
        return self._directory / "spool.db"

    @property
    def known_keys(self) -> Container[ShardKey]:
        """Keys with a row in ``keys`` (cached; written on the writer's thread, looked up from the loop)."""
        return self._key_ids

    @property
    def dead_bytes(self) -> int:
        """Bytes the dead letters count against their bound."""
        return self._dead_bytes

    def open(self, max_bytes: int | None = None) -> Recovery:
        """Create the folder and database if needed (private), take the lock, and read every key's backlog.

        The backlogs come from one GROUP BY over the index on key_id (ordered by seq): per key its count, payload
        bytes, smallest seq and that row's accepted_at (SQLite takes a bare column from the row that min() chose).
        """
        try:
            private_folder(self._directory)
            lock_path = self._directory / "lock"
            private_file(lock_path)
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
            self._wal_bytes = disk.size_wal(db, max_bytes)
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
            self.outcome_rows, self.outcome_bytes = outcome_rows.totals(db)
            key_records = outcome_rows.key_records(db)
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
            key = (write_key, REGIONS[region])
            self._key_ids[key] = key_id
            self._keys[key_id] = key
            backlogs[key] = Backlog(int(count), int(size), int(seq), float(accepted_at))
        return Recovery(int(last), backlogs, tuple(key_records))

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
        """The database's pages in use plus its WAL and index (see :func:`sidecar.spool.disk.used_bytes`)."""
        return disk.used_bytes(self._conn, self.path, self._wal_bytes)

    def insert(self, events: Sequence[SpooledEvent]) -> None:
        """Durably store a group commit's events: one statement and one fsync when they fit one statement.

        Why not ``executemany`` in a transaction: the sqlite3 module lets go of the GIL around every statement step
        and must win it back from the busy event loop thread after each one, up to one switch interval per step. Under
        load that made a 1,000-event commit take 140 ms instead of 8 ms, and a one-event commit 22 ms instead of
        0.3 ms. A single statement in autocommit mode (its own transaction, fsync'd inside the step) needs
        the GIL back once; the statement's row count is rounded up to a few cached sizes and padded with NULL rows
        that its WHERE clause drops. A key seen for the first time (or again after it was forgotten) gets its row in
        ``keys`` in the same transaction.
        """
        db = self._conn
        ids = self._key_ids
        shards = list(map(writes.shard_of, events))
        missing = set(shards).difference(ids)
        if not missing and len(events) <= writes.INSERT_SIZES[-1]:
            writes.insert_rows(db, writes.parameters(events, shards, ids), len(events))
            return
        created: dict[ShardKey, int] = {}
        with Transaction(db):
            for shard in missing:
                created[shard] = self._find_or_add_key(db, shard)
            lookup = {shard: created[shard] if shard in created else ids[shard] for shard in set(shards)}
            step = writes.INSERT_SIZES[-1]
            for start in range(0, len(events), step):
                chunk = events[start : start + step]
                writes.insert_rows(db, writes.parameters(chunk, shards[start : start + step], lookup), len(chunk))
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
            key = (row[0], REGIONS[row[1]])
        return key

    def _key_id(self, key: ShardKey) -> int | None:
        """A key's id, cached or from ``keys`` (the writer's thread)."""
        key_id = self._key_ids.get(key)
        if key_id is None:
            try:
                key_id = lookup_key(self._conn, key)
            except sqlite3.Error as exc:
                raise SpoolFailure(f"spool read failed: {exc}") from exc
        return key_id

    def _remember(self, keys: dict[ShardKey, int]) -> None:
        """Cache committed key ids (the writer's thread only)."""
        for key, key_id in keys.items():
            self._key_ids[key] = key_id
            self._keys[key_id] = key
            self._unused.discard(key_id)

    def delete(self, seqs: Sequence[int], stamp: Stamp | None = None) -> None:
        """Forget delivered events, in one statement: a range when the seqs are consecutive (one write key's
        events), else the list of seqs as a JSON array (many keys' events interleaved). With a ``stamp``, the
        records of those still held are copied into the outcome log first, in the same transaction (a crash keeps
        both or neither; an event gone already had its record); no extra fsync, the commit is the one.

        One statement rather than one per event or per range, for the GIL's sake (see :meth:`insert`)."""
        ranges = writes.seq_ranges(seqs)
        if not ranges:
            return
        where, parameters = writes.matching(ranges, seqs)
        if stamp is None:
            self._delete(where, parameters)
            return
        logged = (0, 0)
        with Transaction(self._conn):
            if stamp.gateway:
                outcome_rows.log_forwarded(self._conn, stamp, where, parameters)
            else:
                logged = outcome_rows.log_events(self._conn, stamp, where, parameters)
            self._delete(where, parameters)
        self._logged(*logged)

    def _delete(self, where: str, parameters: tuple[object, ...]) -> None:
        try:
            # ``where`` is one of writes.matching's two fixed clauses; the seqs travel as parameters.
            self._conn.execute(f"DELETE FROM events WHERE {where}", parameters)
        except sqlite3.Error as exc:
            raise SpoolFailure(f"spool write failed: {exc}") from exc

    def dead_letter(self, letters: Sequence[DeadLetter], stamp: Stamp | None = None) -> None:
        """Copy events still pending into dead_letters and delete them from events, in one transaction, with the
        outcome records (``stamp``) of those that moved (an event already gone has had its record)."""
        if not letters:
            return
        db = self._conn
        logged = (0, 0)
        with Transaction(db):
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
            if stamp is not None:  # before the rows leave: the records are copied from them
                logged = outcome_rows.log_events(db, stamp, "seq IN (SELECT value FROM json_each(?))", (seqs,))
            db.execute("DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?))", (seqs,))
        self._logged(*logged)
        self._dead_bytes += sum(map(letter_size, moving))

    def load(self, after_seq: int, max_bytes: int) -> list[SpooledEvent]:
        """Read ahead in seq order."""
        return self._read("seq > ?", (after_seq,), max_bytes)

    def _read(self, where: str, parameters: tuple[object, ...], max_bytes: int) -> list[SpooledEvent]:
        """Rows matching ``where`` in seq order until about ``max_bytes`` of payload (at least one row), read as
        aggregate rows (see :mod:`sidecar.spool.reads`)."""
        try:
            loaded, self._row_bytes = reads.read_rows(
                self._conn, where, parameters, max_bytes, self._row_bytes, self._key_of
            )
        except sqlite3.Error as exc:
            raise SpoolFailure(f"spool read failed: {exc}") from exc
        return loaded

    def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent]:
        """One key's next events from the index on (key_id, seq), on the read connection (see
        :func:`sidecar.spool.reads.read_key`)."""
        reader = self._reader
        if reader is None:
            raise SpoolFailure("the spool is not open")
        try:
            key_id = self._key_ids.get(key)
            if key_id is None:
                key_id = lookup_key(reader, key)
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
        loaded, self._read_row_bytes = reads.read_key(
            reader, key, key_id, after_seq, max_bytes, max_events, self._read_row_bytes
        )
        return loaded

    def oldest(self, keys: Iterable[ShardKey]) -> dict[ShardKey, tuple[int, float]]:
        """Each key's oldest event from the index (one row per key), on the writer's connection."""
        found: dict[ShardKey, tuple[int, float]] = {}
        db = self._conn
        try:
            for key in keys:
                key_id = self._key_id(key)
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

    def take_replays(self, first_seq: int, accepted_at: float) -> list[SpooledEvent]:
        """Re-queue dead letters marked for replay, under new seqs (from the spool's writer) so the queue stays in
        order, accepted anew at ``accepted_at`` (a replay is a person's decision: the event's age starts again);
        plain INSERT, so a seq in use fails the replay instead of overwriting an event."""
        db = self._conn
        size = 0
        keys: dict[ShardKey, int] = {}
        with Transaction(db):
            rows = db.execute(
                "SELECT seq, key_id, message_id, payload, accepted_at, size FROM dead_letters WHERE replay = 1"
                " ORDER BY seq"
            ).fetchall()
            events: list[SpooledEvent] = []
            for i, (_, key_id, message_id, payload, _, letter_bytes) in enumerate(rows):
                key = self._key_of(db, key_id)
                keys[key] = key_id
                events.append(SpooledEvent(key[0], key[1], message_id, bytes(payload), accepted_at, first_seq + i))
                size += letter_bytes
            db.executemany(
                f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?)",
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
        with Transaction(db):
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
