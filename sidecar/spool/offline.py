"""The ``dead-letters`` command's access to a spool folder: list its dead letters and mark them for replay, from
another process, beside a running sidecar or without one."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from sidecar.model import SpooledEvent
from sidecar.spool.schema import REGIONS, connect
from sidecar.spool.store import DeadLetter


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
        event = SpooledEvent(write_key, REGIONS[region], message_id, bytes(payload), accepted_at, seq)
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
