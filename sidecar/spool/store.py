"""Where spooled events live: SQLite on disk (the default) or memory, behind one small blocking interface.

On-disk layout (``$SIDECAR_SPOOL_DIR``, created 0700; every file in it 0600, whatever the umask)::

    spool.db        SQLite database in WAL mode, synchronous=FULL (a commit is fsync'd before it returns),
                    secure_delete=FAST (deleted rows zeroed in the pages written anyway; freed pages not rewritten)
    spool.db-wal    its write-ahead log; spool.db-shm its shared-memory index (both managed by SQLite, and created
                    with spool.db's mode); the WAL is checkpointed and truncated at a size scaled to the spool's bound
    lock            held with flock(2) while a sidecar runs, so two sidecars never share one spool

    PRAGMA user_version = 2 (version 0 stored the write key in every row; 1 had no outcome log: both migrated
    when opened); the outcome log's tables are drawn in :mod:`sidecar.spool.outcome_rows`

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
fails the commit instead of overwriting an acknowledged row). Every method of a store blocks: the
:class:`~sidecar.spool.Spool` runs them on one dedicated writer thread, which also serialises them, except
:meth:`~sidecar.spool.sqlite.SqliteStore.read`, which uses a read-only connection of its own on a second thread (WAL
lets it read beside the writer). A key that has no events and no dead letters left is forgotten (row and cache) by the
next :meth:`Store.prune`.

This module holds what every store shares: the :class:`Store` protocol and the values it deals in. The SQLite
store is :mod:`sidecar.spool.sqlite` (its files and schema in :mod:`sidecar.spool.schema`, its row writes in
:mod:`sidecar.spool.writes`, its reads in :mod:`sidecar.spool.reads`, its disk accounting in
:mod:`sidecar.spool.disk`); the memory store is :mod:`sidecar.spool.memory`; the ``dead-letters`` command's access
from another process is :mod:`sidecar.spool.offline`.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sidecar.model import Backlog, ShardKey, SpooledEvent
from sidecar.outcomes.records import KeyRecord, OutcomeRecord, Stamp

Oldest = tuple[int, float]
"""A key's oldest event in the store: (seq, accepted_at)."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a store found when it opened: the highest seq it ever held and every key's backlog."""

    last_seq: int
    backlogs: dict[ShardKey, Backlog]
    key_records: tuple[KeyRecord, ...] = ()
    """Every key's stored state (outcome log, schema version 2)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The record of an event given up on, as the store keeps it: when, why, and what Segment answered."""

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

    def open(self, max_bytes: int | None = None) -> Recovery:
        """Open or create, sized for ``max_bytes`` (the spool's bound) when given; return the last seq used and the
        backlog of every key with events."""

    def close(self) -> None:
        """Release files; idempotent."""

    def insert(self, events: Sequence[SpooledEvent]) -> None:
        """Durably store events before they are acknowledged."""

    def delete(self, seqs: Sequence[int], stamp: Stamp | None = None) -> None:
        """Forget delivered events, appending the records of those held (``stamp`` and each event's message id and
        acceptance time) in the same transaction."""

    def dead_letter(self, letters: Sequence[DeadLetter], stamp: Stamp | None = None) -> None:
        """Move events to the dead letters, atomically (events already gone are skipped), with their records."""

    def record_key(self, record: KeyRecord, outcome: OutcomeRecord | None) -> None:
        """Store a key's new state, and its record on the outcome log if any, in one transaction."""

    def settle_forwarded(self, gateway: str, records: Sequence[OutcomeRecord], cursor: str) -> int:
        """An edge: a gateway's final records settle the events forwarded to it; the cursor is stored with them."""

    def gateway_cursor(self, gateway: str) -> str:
        """An edge: where its reading of ``gateway``'s outcome stream stopped ("" for the start)."""

    def prune_outcomes(self, max_bytes: int, before: float) -> int:
        """Drop the oldest outcome records while older than ``before`` or beyond ``max_bytes``; return how many."""

    @property
    def outcome_rows(self) -> int:
        """Records the outcome log holds."""

    @property
    def outcome_bytes(self) -> int:
        """Their bytes (see :attr:`~sidecar.outcomes.records.OutcomeRecord.size`)."""

    def load(self, after_seq: int, max_bytes: int) -> list[SpooledEvent]:
        """Events with seq > after_seq in order, up to about max_bytes of payload (at least one)."""

    def take_replays(self, first_seq: int, accepted_at: float) -> list[SpooledEvent]:
        """Move dead letters marked for replay back into the queue with new seqs from first_seq, accepted anew at
        ``accepted_at``; return them."""

    def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent]:
        """One key's events with seq > after_seq in order: at most max_events, and stopping before their payloads
        would exceed max_bytes (at least one if any). May run on a thread of its own, beside the writer's."""

    def oldest(self, keys: Iterable[ShardKey]) -> dict[ShardKey, Oldest]:
        """After events of these keys left: the (seq, accepted_at) of each key's oldest event left; keys without
        events are left out (and become candidates for the next :meth:`prune`)."""

    @property
    def known_keys(self) -> Container[ShardKey]:
        """Keys the store holds a row for already (an append of a new key costs its row too)."""

    def prune(self, max_dead_bytes: int, dead_before: float) -> Pruned:
        """Drop dead letters that died before ``dead_before``, then the oldest until they hold at most
        ``max_dead_bytes``; forget keys with nothing left."""

    @property
    def dead_bytes(self) -> int:
        """Bytes the dead letters count (see :func:`letter_size`)."""

    def used_bytes(self) -> int:
        """Bytes the store occupies: for SQLite, the database's pages in use (rows, keys, indexes) plus the WAL."""
