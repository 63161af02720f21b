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
from sidecar.outcomes.records import KeyRecord, KeyState, OutcomeKind, OutcomeRecord
from sidecar.spool.schema import connect_reader

_INSERT = (
    "INSERT INTO outcomes (at, kind, fingerprint, region, message_id, reason, status, response, accepted_at, size)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
