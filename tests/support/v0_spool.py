"""Build a version-0 spool (the layout before the ``keys`` table: write key and region in every row) as a real SQLite
file, the way a sidecar of that version left it: WAL mode, ``user_version`` 0, the index on (write_key, region, seq).

Runnable by hand for the large case: ``python -m tests.support.v0_spool DIR MiB``.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

V0_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, write_key TEXT NOT NULL, region TEXT NOT NULL, message_id TEXT NOT NULL,
    payload BLOB NOT NULL, accepted_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY, write_key TEXT NOT NULL, region TEXT NOT NULL, message_id TEXT NOT NULL,
    payload BLOB NOT NULL, accepted_at REAL NOT NULL, dead_at REAL NOT NULL, reason TEXT NOT NULL,
    response TEXT NOT NULL, replay INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS events_by_key ON events (write_key, region, seq);
"""
"""The version-0 schema, as the sidecar created it before the ``keys`` table."""

WRITE_KEYS = ("wk-v0-a", "wk-v0-b", "wk-v0-c", "wk-v0-eu")


@dataclass(frozen=True)
class V0Spool:
    """What a built version-0 spool holds: every event's and every dead letter's message id by seq."""

    events: dict[int, str]
    dead_letters: dict[int, str]


def payload(seq: int, size: int) -> bytes:
    """A JSON event of about ``size`` bytes that names its seq, so a test can tell every row apart."""
    head = (
        b'{"type":"track","event":"Report Generated","userId":"user-%d","messageId":"v0-%08d",'
        b'"timestamp":"2026-01-01T00:00:00.000Z","properties":{"pad":"' % (seq % 97, seq)
    )
    return head + b"p" * max(0, size - len(head) - 3) + b'"}}'


def build(directory: Path, megabytes: float, row_bytes: int = 600, dead_every: int = 50) -> V0Spool:
    """Write a version-0 ``spool.db`` of about ``megabytes`` MiB of payload into ``directory``: seqs 1, 2, ... with
    every ``dead_every``-th row a dead letter (one in three of those marked for replay), write keys in rotation (one
    of them in the EU region), accepted in the last minutes (so none is too old to deliver). The WAL is checkpointed
    and truncated, as a cleanly stopped sidecar leaves it."""
    directory.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(directory / "spool.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.executescript(V0_SCHEMA)
    rows = int(megabytes * 2**20 / row_bytes)
    accepted = time.time() - 600
    events: dict[int, str] = {}
    dead: dict[int, str] = {}
    db.execute("BEGIN")
    for seq in range(1, rows + 1):
        key = WRITE_KEYS[seq % len(WRITE_KEYS)]
        region = "eu" if key.endswith("-eu") else "us"
        message_id = f"v0-{seq:08d}"
        body = payload(seq, row_bytes)
        if seq % dead_every == 0:
            db.execute(
                "INSERT INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    seq,
                    key,
                    region,
                    message_id,
                    body,
                    accepted + seq / rows,
                    accepted + 300,
                    "refused",
                    "HTTP 400",
                    seq % 3 == 0,
                ),
            )
            dead[seq] = message_id
        else:
            db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                (seq, key, region, message_id, body, accepted + seq / rows),
            )
            events[seq] = message_id
        if seq % 20_000 == 0:
            db.execute("COMMIT")
            db.execute("BEGIN")
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return V0Spool(events, dead)


if __name__ == "__main__":
    built = build(Path(sys.argv[1]), float(sys.argv[2]))
    print(f"{len(built.events)} events, {len(built.dead_letters)} dead letters")
