"""How the SQLite store writes rows: few statements, each with many rows, for the GIL's sake.

The sqlite3 module lets go of the GIL around every statement step and must win it back from the busy event loop
thread after each one (see :meth:`sidecar.spool.sqlite.SqliteStore.insert`): so a group commit's rows go in one
statement of a few cached sizes, and a delivered batch's rows leave in one statement (a range, or a JSON array).
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Sequence
from itertools import chain

import orjson

from sidecar.errors import SpoolFailure
from sidecar.model import ShardKey, SpooledEvent
from sidecar.spool.schema import COLUMNS

# A row's parameters, gathered in C rather than by a per-event tuple display in Python.
shard_of = operator.attrgetter("write_key", "region")
_seq = operator.attrgetter("seq")
_message_id = operator.attrgetter("message_id")
_payload = operator.attrgetter("payload")
_accepted_at = operator.attrgetter("accepted_at")

# Row counts of the cached INSERT statements: the powers of two and the sizes halfway between them, so that a statement
# is never more than a third padding. A NULL row costs SQLite about as much as a stored one: with the coarser sizes
# used before (1, 4, 16, 64, 256, 1,024), a commit of 300 events went into the 1,024-row statement and cost twice as
# much as in the 384-row one. 1,024 rows x 5 columns stays under SQLite's 32,766 bound parameters, and the 20
# statements fit the sqlite3 module's statement cache (128).
INSERT_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
_INSERT_ROWS = {
    rows: f"INSERT INTO events ({COLUMNS}) SELECT * FROM (VALUES "
    + ",".join(["(?,?,?,?,?)"] * rows)
    + ") WHERE column1 IS NOT NULL"
    for rows in INSERT_SIZES
}
_PADDING = (None,) * 5
_OLDEST = "SELECT seq, accepted_at FROM events WHERE key_id = ? ORDER BY seq LIMIT 1"


def insert_rows(db: sqlite3.Connection, parameters: list[object], rows: int) -> None:
    """Insert up to 1,024 events' parameters (5 per row) with one statement (see :meth:`SqliteStore.insert`)."""
    size = next(size for size in INSERT_SIZES if size >= rows)
    if size > rows:
        parameters.extend(_PADDING * (size - rows))
    try:
        db.execute(_INSERT_ROWS[size], parameters)
    except sqlite3.Error as exc:
        if db.in_transaction:
            raise  # the caller's Transaction rolls back and reports it
        raise SpoolFailure(f"spool write failed: {exc}") from exc


def seq_ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Runs of consecutive seqs as (first, last): a batch of one write key is usually one run, recognised without a
    loop in Python."""
    ranges: list[tuple[int, int]] = []
    if not seqs:
        return ranges
    first, last = seqs[0], seqs[-1]
    if last - first == len(seqs) - 1 and list(seqs) == list(range(first, last + 1)):
        return [(first, last)]
    ordered = sorted(seqs)
    first = last = ordered[0]
    for seq in ordered[1:]:
        if seq != last + 1:
            ranges.append((first, last))
            first = seq
        last = seq
    ranges.append((first, last))
    return ranges


def parameters(events: Sequence[SpooledEvent], shards: Sequence[ShardKey], ids: dict[ShardKey, int]) -> list[object]:
    """The events' rows as one flat parameter list, built in C (see ``shard_of`` and friends)."""
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


def matching(ranges: list[tuple[int, int]], seqs: Sequence[int]) -> tuple[str, tuple[object, ...]]:
    """The WHERE clause (and its parameters) of a removal's seqs: a range, or a JSON array of them."""
    if len(ranges) == 1:
        return "seq BETWEEN ? AND ?", ranges[0]
    return "seq IN (SELECT value FROM json_each(?))", (orjson.dumps(list(seqs)),)
