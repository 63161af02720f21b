"""The outcome log's rows in the SQLite spool: written in the transactions that remove or dead-letter events (so a
crash keeps both or neither), the keys' stored states, pruning, and the reads the outcome readers make.

Layout (schema version 2, see :mod:`sidecar.spool.schema`)::

    table outcomes      seq INTEGER PRIMARY KEY AUTOINCREMENT  -- the record's place in the log (cursors carry it)
                        at REAL, kind INTEGER (OutcomeKind), fingerprint TEXT, region TEXT, message_id TEXT,
                        reason TEXT, status INTEGER, response TEXT, accepted_at REAL,
                        size INTEGER   -- bytes counted against SIDECAR_OUTCOMES_MAX_BYTES
        index outcomes_by_message (message_id): GetMessageOutcome
    table key_states    (write_key, region) PRIMARY KEY, state INTEGER (KeyState), since REAL, status, response
    table spool_meta    name TEXT PRIMARY KEY, value TEXT      -- 'id': the spool's random identity

Records are only appended (seq grows with time), so pruning deletes a prefix: the oldest rows by seq until the rest
are young and small enough.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from sidecar.errors import SpoolFailure
from sidecar.outcomes.records import KeyRecord, KeyState, OutcomeKind, OutcomeRecord, Stamp
from sidecar.spool.schema import Transaction, connect_reader

_INSERT = (
    "INSERT INTO outcomes (at, kind, fingerprint, region, message_id, reason, status, response, accepted_at, size)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_LOG_EVENTS = (
    "INSERT INTO outcomes (at, kind, fingerprint, region, message_id, reason, status, response, accepted_at, size)"
    " SELECT ?, ?, ?, ?, message_id, ?, ?, ?, accepted_at, ? + length(message_id) FROM events WHERE {where}"
    " ORDER BY seq"
)
"""Completed with the removal's own clause (a seq range or a JSON array of seqs, with parameters), never input."""
_LOG_FORWARDED = (
    "INSERT INTO forwarded (message_id, fingerprint, region, gateway, accepted_at)"
    " SELECT message_id, ?, ?, ?, accepted_at FROM events WHERE {where}"
)
_COLUMNS = "seq, at, kind, fingerprint, region, message_id, reason, status, response, accepted_at"


def insert(db: sqlite3.Connection, records: Sequence[OutcomeRecord]) -> int:
    """Append records inside the caller's transaction; return their bytes."""
    db.executemany(
        _INSERT,
        [
            (
                r.at,
                int(r.kind),
                r.fingerprint,
                r.region,
                r.message_id,
                r.reason,
                r.status,
                r.response,
                r.accepted_at,
                r.size,
            )
            for r in records
        ],
    )
    return sum(r.size for r in records)


def log_events(db: sqlite3.Connection, stamp: Stamp, where: str, parameters: tuple[object, ...]) -> tuple[int, int]:
    """Append, inside the caller's transaction and before they leave ``events``, the records of the events matching
    ``where``, copying their message ids and acceptance times in SQLite (no Python work per event); return (bytes,
    rows)."""
    sql = _LOG_EVENTS.format(where=where)
    cursor = db.execute(
        sql,
        (
            stamp.at,
            int(stamp.kind),
            stamp.fingerprint,
            stamp.region,
            stamp.reason,
            stamp.status,
            stamp.response,
            stamp.fixed_size,
            *parameters,
        ),
    )
    rows = cursor.rowcount
    if rows <= 0 or cursor.lastrowid is None:
        return 0, 0
    size = db.execute("SELECT coalesce(sum(size), 0) FROM outcomes WHERE seq > ?", (cursor.lastrowid - rows,))
    return int(size.fetchone()[0]), rows


def log_forwarded(db: sqlite3.Connection, stamp: Stamp, where: str, parameters: tuple[object, ...]) -> None:
    """Keep the message ids of events a gateway accepted (before they leave ``events``, in the caller's transaction),
    to be settled by the gateway's final records."""
    db.execute(_LOG_FORWARDED.format(where=where), (stamp.fingerprint, stamp.region, stamp.gateway, *parameters))


def settle_forwarded(
    db: sqlite3.Connection, gateway: str, records: Sequence[OutcomeRecord], cursor: str
) -> tuple[int, int]:
    """Inside the caller's transaction: each of a gateway's final records that settles an event this edge forwarded
    to it becomes this edge's final record (its message id, fingerprint and acceptance time; the gateway's kind,
    time, reason and answer), the forwarded row goes, and the gateway's cursor is stored. Returns (bytes, rows)."""
    size = rows = 0
    for record in records:
        row = db.execute(
            "SELECT rowid, region, accepted_at FROM forwarded WHERE message_id = ? AND gateway = ? AND fingerprint = ?"
            " LIMIT 1",
            (record.message_id, gateway, record.fingerprint),
        ).fetchone()
        if row is None:
            continue  # another edge's event, or one this edge settled already
        mine = OutcomeRecord(
            record.kind,
            record.at,
            record.fingerprint,
            str(row[1]),
            record.message_id,
            record.reason,
            record.status,
            record.response,
            float(row[2]),
        )
        size += insert(db, [mine])
        rows += 1
        db.execute("DELETE FROM forwarded WHERE rowid = ?", (row[0],))
    db.execute("INSERT OR REPLACE INTO spool_meta (name, value) VALUES (?, ?)", (f"cursor:{gateway}", cursor))
    return size, rows


def gateway_cursor(db: sqlite3.Connection, gateway: str) -> str:
    """The last cursor of ``gateway``'s stream this edge settled ("" for none)."""
    row = db.execute("SELECT value FROM spool_meta WHERE name = ?", (f"cursor:{gateway}",)).fetchone()
    return "" if row is None else str(row[0])


def save_key(db: sqlite3.Connection, record: KeyRecord) -> None:
    """Store a key's new state inside the caller's transaction."""
    db.execute(
        "INSERT OR REPLACE INTO key_states (write_key, region, state, since, status, response)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (record.write_key, record.region, int(record.state), record.since, record.status, record.response),
    )


def totals(db: sqlite3.Connection) -> tuple[int, int]:
    """Rows and bytes the log holds."""
    rows, size = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM outcomes").fetchone()
    return int(rows), int(size)


def key_records(db: sqlite3.Connection) -> list[KeyRecord]:
    """Every key's stored state."""
    return [
        KeyRecord(write_key, region, KeyState(state), float(since), int(status), response)
        for write_key, region, state, since, status, response in db.execute(
            "SELECT write_key, region, state, since, status, response FROM key_states"
        )
    ]


def prune(db: sqlite3.Connection, max_bytes: int, before: float, held: int) -> tuple[int, int]:
    """Delete the oldest records while they are older than ``before`` or the log holds more than ``max_bytes``
    (``held`` its bytes now); return (rows, bytes) deleted. Reads only the rows it deletes, and one more."""
    rows = freed = 0
    last = None
    for seq, at, size in db.execute("SELECT seq, at, size FROM outcomes ORDER BY seq"):
        if at >= before and held - freed <= max_bytes:
            break
        rows += 1
        freed += size
        last = seq
    if last is not None:
        db.execute("DELETE FROM outcomes WHERE seq <= ?", (last,))
    return rows, freed


def _record(row: tuple[object, ...]) -> OutcomeRecord:
    seq, at, kind, fingerprint, region, message_id, reason, status, response, accepted_at = row
    return OutcomeRecord(
        OutcomeKind(int(kind)),  # type: ignore[call-overload]
        float(at),  # type: ignore[arg-type]
        str(fingerprint),
        str(region),
        str(message_id),
        str(reason),
        int(status),  # type: ignore[call-overload]
        str(response),
        float(accepted_at),  # type: ignore[arg-type]
        int(seq),  # type: ignore[call-overload]
    )


class SqliteOutcomeReader:
    """Reads the outcome log on a read-only connection of its own (WAL: never in the writer's way). Blocking: the
    caller runs it on a thread of its own (:class:`sidecar.outcomes.service.Outcomes` does)."""

    inline = False
    """Blocks: called on a thread of its own."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = connect_reader(self._path)
        return self._db

    def close(self) -> None:
        """Close the connection; idempotent."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def _query(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return list(self._conn().execute(sql, parameters))
        except sqlite3.Error as exc:
            raise SpoolFailure(f"outcome log read failed: {exc}") from exc

    def spool_id(self) -> str:
        """The spool's identity (cursors carry it)."""
        rows = self._query("SELECT value FROM spool_meta WHERE name = 'id'")
        return str(rows[0][0]) if rows else ""

    def bounds(self) -> tuple[int, int]:
        """(oldest seq held, newest seq ever written): (0, newest) when the log is empty."""
        rows = self._query(
            "SELECT coalesce((SELECT min(seq) FROM outcomes), 0),"
            " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outcomes'), 0)"
        )
        return int(rows[0][0]), int(rows[0][1])  # type: ignore[call-overload]

    def after(self, seq: int, limit: int) -> list[OutcomeRecord]:
        """Up to ``limit`` records after ``seq``, in order."""
        sql = f"SELECT {_COLUMNS} FROM outcomes WHERE seq > ? ORDER BY seq LIMIT ?"  # noqa: S608 - constants
        return [_record(row) for row in self._query(sql, (seq, limit))]

    def by_message(self, message_id: str) -> list[OutcomeRecord]:
        """The final records of a message id, oldest first (from the index on message_id)."""
        sql = f"SELECT {_COLUMNS} FROM outcomes WHERE message_id = ? ORDER BY seq"  # noqa: S608 - constants
        return [_record(row) for row in self._query(sql, (message_id,))]

    def waiting(self, message_id: str) -> list[tuple[str, str, int, float]]:
        """Events in the spool with this message id: (write key, region, seq, accepted_at). A scan of ``events``
        (no index on message_id there: it would cost every insert for a support question; see the README)."""
        rows = self._query(
            "SELECT k.write_key, k.region, e.seq, e.accepted_at FROM events e JOIN keys k ON k.id = e.key_id"
            " WHERE e.message_id = ? ORDER BY e.seq",
            (message_id,),
        )
        return [(str(a), str(b), int(c), float(d)) for a, b, c, d in rows]  # type: ignore[call-overload,arg-type]

    def forwarded(self, message_id: str) -> list[tuple[str, str, float]]:
        """An edge: events with this id a gateway accepted and has not settled: (fingerprint, region, accepted_at)."""
        rows = self._query("SELECT fingerprint, region, accepted_at FROM forwarded WHERE message_id = ?", (message_id,))
        return [(str(a), str(b), float(c)) for a, b, c in rows]  # type: ignore[arg-type]

    def last_delivered(self) -> dict[tuple[str, str], float]:
        """When each (fingerprint, region) last had an event delivered, as far as the log remembers."""
        rows = self._query(
            "SELECT fingerprint, region, max(at) FROM outcomes WHERE kind = ? GROUP BY fingerprint, region",
            (int(OutcomeKind.DELIVERED),),
        )
        return {(str(fp), str(region)): float(at) for fp, region, at in rows}  # type: ignore[arg-type]

    def dead_letters(self) -> dict[tuple[str, str], dict[str, int]]:
        """Dead letters held now, by (write key, region) and reason sentence."""
        found: dict[tuple[str, str], dict[str, int]] = {}
        for write_key, region, reason, count in self._query(
            "SELECT k.write_key, k.region, d.reason, count(*) FROM dead_letters d JOIN keys k ON k.id = d.key_id"
            " GROUP BY d.key_id, d.reason"
        ):
            found.setdefault((str(write_key), str(region)), {})[str(reason)] = int(count)  # type: ignore[call-overload]
        return found


class LogRows:
    """The SQLite store's outcome-log methods (a base of :class:`~sidecar.spool.sqlite.SqliteStore`, which gives the
    connection)."""

    outcome_rows = 0
    outcome_bytes = 0

    @property
    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _logged(self, size: int, rows: int) -> None:
        self.outcome_bytes += size
        self.outcome_rows += rows

    def record_key(self, record: KeyRecord, outcome: OutcomeRecord | None) -> None:
        """Store a key's new state, with its record on the outcome log when the change is one the log shows."""
        db = self._conn
        with Transaction(db):
            save_key(db, record)
            logged = (insert(db, [outcome]), 1) if outcome is not None else (0, 0)
        self._logged(*logged)

    def settle_forwarded(self, gateway: str, records: Sequence[OutcomeRecord], cursor: str) -> int:
        """A gateway's final records settle the events forwarded to it (see :func:`settle_forwarded`)."""
        with Transaction(self._conn):
            logged = settle_forwarded(self._conn, gateway, records, cursor)
        self._logged(*logged)
        return logged[1]

    def gateway_cursor(self, gateway: str) -> str:
        """Where this edge's reading of ``gateway``'s stream stopped."""
        return gateway_cursor(self._conn, gateway)

    def prune_outcomes(self, max_bytes: int, before: float) -> int:
        """Drop the oldest outcome records while older than ``before`` or beyond ``max_bytes``; return how many."""
        if not self.outcome_rows:
            return 0
        with Transaction(self._conn):
            rows, freed = prune(self._conn, max_bytes, before, self.outcome_bytes)
        self._logged(-freed, -rows)
        return rows
