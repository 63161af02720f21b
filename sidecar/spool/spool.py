"""The spool: a durable queue, and the acknowledgement boundary. The gRPC edge appends to it; delivery reads from it.

One writer owns the seqs: the writer task numbers each group of appends when it commits it, and moves replayed dead
letters back into the queue between two commits, so an append and a replay are never given the same seq; the store
refuses to overwrite a row rather than replace it.

``append`` returns only once its events are committed (with ``SIDECAR_SPOOL=disk``, fsync'd), which is when a call is
acknowledged. Concurrent appends share one commit (group commit): while one commit runs on the store's thread, new
appends gather, and the next commit takes all of them; its callers wake in the callback that applies it. Delivery
reads each key's next events from a bounded read-ahead of the newest commits (:mod:`sidecar.spool.recent`), else
from the store (so a backlog of millions of events lives on disk, not in RAM).

The spool is storage plus the news of what joined it: its one downstream (:class:`SpoolListener`, subscribed with
:meth:`Spool.subscribe`) is told what the store held when it opened (each key's :class:`~sidecar.model.Backlog`), and,
on the event loop and in seq order, every group of events committed or replayed. Delivery keeps its per-key state
from that; the spool keeps none. :meth:`Spool.read` returns a key's next events from the store's index (SQLite: on a
read connection and thread of its own, beside the writer). An event leaves through :meth:`Spool.remove` (delivered)
or :meth:`Spool.dead_letter`; both answer each key's oldest event left, read in the same store job. Every store job's
effect on the spool's counters is applied on the event loop in the order the jobs ran on the store's thread
(:mod:`sidecar.spool.jobs`).

Bounds: a disk spool counts what its files occupy (measured after removals, and after commits every 50 ms or every
time near the bound; estimated in between) against ``max_bytes``, and refuses appends past it with
:class:`~sidecar.errors.CapacityExhausted` (RESOURCE_EXHAUSTED with a retry delay; :mod:`sidecar.spool.bound`). Dead
letters are pruned, oldest first, past their own bound and age, by the dead-letter job that overflows them and by the
pruner (:mod:`sidecar.spool.pruning`). The writer and the pruner run under a :class:`~sidecar.tasks.Supervisor`
(units ``spool.writer`` and ``spool.pruner``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from sidecar.errors import SpoolFailure
from sidecar.model import Event, ShardKey, SpooledEvent, by_key, payload_bytes
from sidecar.outcomes.records import KeyRecord, OutcomeKind, OutcomeRecord
from sidecar.spool import outcome_log
from sidecar.spool.bound import Bound
from sidecar.spool.downstream import Downstream, SpoolListener
from sidecar.spool.jobs import Lane, StoreJobs, oldest_of, seq_of, used_or_none
from sidecar.spool.outcome_log import DEFAULT_OUTCOMES_MAX_AGE, DEFAULT_OUTCOMES_MAX_BYTES, OutcomeNews
from sidecar.spool.pruning import (
    DEFAULT_DEAD_LETTER_MAX_AGE,
    DEFAULT_DEAD_LETTER_MAX_BYTES,
    PRUNE_INTERVAL,
    DeadLetterBounds,
)
from sidecar.spool.recent import Recent
from sidecar.spool.store import DeadLetter, Oldest, Pruned, Store
from sidecar.tasks import Supervision, Supervisor

log = structlog.get_logger("sidecar.spool")


@dataclass
class _PendingAppend:
    events: list[SpooledEvent]
    size: int
    estimate: int
    done: asyncio.Future[None] = field(repr=False)


class Spool:
    """The acknowledgement boundary and the queue between ingestion and delivery.

    ``max_bytes`` bounds what a disk spool occupies on disk (its database's pages in use, with rows, keys, indexes and
    dead letters, plus its WAL), or the payload bytes a memory spool holds. Dead letters are kept up to
    ``dead_letter_max_bytes`` (at most a quarter of ``max_bytes``) and ``dead_letter_max_age`` seconds; beyond
    either, the oldest are pruned, logged (``dead_letters_pruned``) and counted in :attr:`dead_letters_pruned`.
    """

    def __init__(
        self,
        store: Store,
        max_bytes: int,
        dead_letter_max_bytes: int = DEFAULT_DEAD_LETTER_MAX_BYTES,
        dead_letter_max_age: float = DEFAULT_DEAD_LETTER_MAX_AGE,
        prune_interval: float = PRUNE_INTERVAL,
        wall: Callable[[], float] = time.time,
        supervision: Supervision | None = None,
        outcomes_max_age: float = DEFAULT_OUTCOMES_MAX_AGE,
        outcomes_max_bytes: int = DEFAULT_OUTCOMES_MAX_BYTES,
    ) -> None:
        self._store = store
        self.outcomes = OutcomeNews(outcomes_max_age, outcomes_max_bytes)
        self.key_records: tuple[KeyRecord, ...] = ()  # as stored when the spool opened
        self._wall = wall  # dead_at, and the age of dead letters
        self._supervisor = Supervisor("spool", supervision=supervision)
        self._max_bytes = max_bytes
        self._bound = Bound(max_bytes, store.on_disk)
        self._jobs = StoreJobs(store)
        self._run = self._jobs.run
        self._dead = DeadLetterBounds(min(dead_letter_max_bytes, max_bytes // 4), dead_letter_max_age, prune_interval)
        self._pending: list[_PendingAppend] = []
        self._wake = asyncio.Event()
        self._writer_done = asyncio.Event()
        self._stopping = False
        self._replays: list[asyncio.Future[int]] = []  # callers of take_replays, served by the writer
        self._last_seq = 0  # assigned only by the writer
        self.pending_events = 0
        self.pending_bytes = 0
        self.appended_total = 0
        self.recovered = 0
        self._open = False
        self._reader: Lane | None = None  # per-key reads of a store that blocks
        self._recent: Recent | None = None  # its read-ahead
        self._downstream = Downstream()

    # --- lifecycle

    async def start(self) -> None:
        """Open the store and recover what a previous run left; events found are delivered again."""
        if self._open:
            return
        self._jobs.start()
        recovery = await self._run(self._store.open, self._max_bytes)
        if self._store.on_disk:
            self._bound.opened(await self._run(self._store.used_bytes))
        if not self._store.inline:
            self._reader = Lane("spool-read")
            self._reader.start()
            # Keys with events on disk: those below the seq after the last one recovered are read from the store.
            self._recent = Recent(partial=[(key, recovery.last_seq + 1) for key in recovery.backlogs])
        self._last_seq = recovery.last_seq
        self.key_records = recovery.key_records
        self.pending_events = sum(backlog.events for backlog in recovery.backlogs.values())
        self.pending_bytes = sum(backlog.bytes for backlog in recovery.backlogs.values())
        self.recovered = self.pending_events
        self._downstream.recovered(recovery.backlogs, self._last_seq)  # before any append can be told
        self._open = True
        self._stopping = False
        self._writer_done.clear()
        await self._supervisor.start()
        self._supervisor.keep("writer", self._write_loop)
        self._supervisor.keep("pruner", self._prune_loop)

    async def stop(self) -> None:
        """Commit what is pending, then close the store; idempotent and safe without start."""
        if self._open:
            # The writer finishes what it was given (a commit cut short would leave its callers waiting forever).
            self._stopping = True
            self._wake.set()
            await self._writer_done.wait()
        await self._supervisor.stop()
        if self._reader is not None:
            self._reader.shutdown()
            self._reader = None
        if self._jobs.started:
            await self._run(self._store.close)
            self._jobs.shutdown()
        self._open = False

    # --- the write side

    @property
    def last_seq(self) -> int:
        """The seq of the newest acknowledged event."""
        return self._last_seq

    def outcome_totals(self) -> tuple[int, int, int]:
        """The outcome log's records held, their bytes, and records pruned since start (for the metrics)."""
        return self._store.outcome_rows, self._store.outcome_bytes, self.outcomes.pruned

    @property
    def dead_letters_pruned(self) -> int:
        """Dead letters pruned since start (past their age or beyond their bound), for the metrics."""
        return self._dead.pruned

    @property
    def dead_letters_pruned_bytes(self) -> int:
        """Their bytes (as counted against the bound)."""
        return self._dead.pruned_bytes

    async def append(self, events: Sequence[Event]) -> list[SpooledEvent]:
        """Make events durable; return them with their seqs. Raises CapacityExhausted or SpoolFailure."""
        if not events:
            return []
        if not self._open:
            raise SpoolFailure("the spool is not open")
        size = payload_bytes(events)
        estimate = self._bound.reserve(events, size, self.pending_bytes, self._store.known_keys)
        spooled = list(events)
        # Count the bytes now so that concurrent appends see the spool fill up before their commit.
        self.pending_bytes += size
        self.pending_events += len(spooled)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_PendingAppend(spooled, size, estimate, done))
        self._wake.set()
        # Not shielded: ``done`` belongs to this caller alone, and the commit runs in the writer task, so a caller that
        # gives up (deadline) cancels only its own wait; _commit skips futures already done. (A shield cost one more
        # future and event-loop turn per call.)
        await done
        return spooled

    def _take_pending(self) -> list[_PendingAppend]:
        pending, self._pending = self._pending, []
        return pending

    @property
    def disk_bytes(self) -> int:
        """What a disk spool occupies on disk, as last measured plus estimates of commits since (0 for memory)."""
        return self._bound.disk_bytes

    def _number(self, events: Sequence[SpooledEvent]) -> None:
        """Give events the next seqs. Only the writer calls this."""
        seq = self._last_seq
        for event in events:
            seq += 1
            event.seq = seq
        self._last_seq = seq

    async def _write_loop(self) -> None:
        """The one writer: commits groups of appends and moves replays back into the queue, one at a time."""
        self._supervisor.report("writer", None)
        while True:
            if self._pending:
                await self._commit(self._take_pending())
            elif self._replays:
                await self._replay()
            elif self._stopping:
                self._writer_done.set()
                return
            else:
                await self._wake.wait()
                self._wake.clear()

    async def _prune_loop(self) -> None:
        """Every prune interval: prune; a store failure is logged and tried again at the next turn."""
        while True:
            await asyncio.sleep(self._dead.interval)
            try:
                await self.prune()
            except SpoolFailure as exc:
                log.warning("dead_letters_prune_failed", error=str(exc))
            else:
                self._supervisor.report("pruner", None)

    async def _commit(self, group: list[_PendingAppend]) -> None:
        events = [event for pending in group for event in pending.events] if len(group) > 1 else group[0].events
        estimate = sum(pending.estimate for pending in group)
        measure = self._bound.should_measure()
        store = self._store

        def insert() -> int | None:
            store.insert(events)
            return store.used_bytes() if measure else None

        def inserted(used: int | None) -> None:
            # The job's own callback: callers wake in the turn that learns of the commit, not behind the writer task,
            # and before downstream is told (synchronously), whose news wakes the dispatcher: its turn comes after.
            self._bound.committed(estimate)
            self._bound.measured(used)
            self.appended_total += len(events)
            if self._recent is not None:
                self._recent.add(events)
            for pending in group:
                if not pending.done.done():
                    pending.done.set_result(None)
            self._downstream.tell(events)

        # Numbered here, by the writer, never before: seqs of a failed commit are not given again (its rows cannot
        # have been kept, but a failed fsync leaves that uncertain, and a skipped seq costs nothing).
        self._number(events)
        try:
            await self._run(insert, then=inserted)
        except Exception as error:  # the writer must outlive any failure, or every later append would hang
            exc = error if isinstance(error, SpoolFailure) else SpoolFailure(f"spool write failed: {error!r}")
            if not isinstance(error, SpoolFailure):
                log.exception("spool_commit_failed")
            self._bound.released(estimate)
            self.pending_bytes -= sum(pending.size for pending in group)
            self.pending_events -= len(events)
            for pending in group:
                if not pending.done.done():
                    pending.done.set_exception(exc)

    # --- removal, dead letters and pruning

    async def remove(
        self, events: Sequence[SpooledEvent], status: int = 200, gateway: str = ""
    ) -> dict[ShardKey, Oldest] | None:
        """Segment accepted these (answering ``status``): forget them, with their DELIVERED records in the same
        transaction. Returns each of their keys' oldest event left (a key with none is absent), read in the same
        store job; None when that read failed (the removal itself succeeded)."""
        if not events:
            return {}
        keyed = by_key(events)
        keys = [key for key, _ in keyed]
        store = self._store
        groups = outcome_log.stamps(keyed, OutcomeKind.DELIVERED, self._wall(), status, gateway=gateway)

        def job() -> tuple[dict[ShardKey, Oldest] | None, int | None]:
            for group, stamp in groups:
                store.delete(list(map(seq_of, group)), stamp)
            return oldest_of(store, keys), used_or_none(store)

        def done(result: tuple[dict[ShardKey, Oldest] | None, int | None]) -> None:
            self._left(events, result[1], result[0])
            self.outcomes.written()

        oldest, _ = await self._run(job, then=done)
        return oldest

    async def settle_forwarded(self, gateway: str, records: Sequence[OutcomeRecord], cursor: str) -> None:
        """An edge: store the final records a gateway sent for events forwarded to it, with the gateway's cursor."""
        await self._run(self._store.settle_forwarded, gateway, records, cursor, then=lambda _: self.outcomes.written())

    async def gateway_cursor(self, gateway: str) -> str:
        """An edge: where its reading of ``gateway``'s outcome stream stopped."""
        return await self._run(self._store.gateway_cursor, gateway)

    async def record_key(self, record: KeyRecord, outcome: OutcomeRecord | None) -> None:
        """Store a key's new state (and its record on the outcome log, if the change is shown there)."""
        await self._run(self._store.record_key, record, outcome, then=lambda _: self.outcomes.written())

    async def dead_letter(
        self, events: Sequence[SpooledEvent], reason: str, response: str, code: str = "", status: int = 0
    ) -> dict[ShardKey, Oldest] | None:
        """Give these up, keeping them with the reason and Segment's answer (``status``), and their records (reason
        ``code``) in the same transaction; returns as :meth:`remove`."""
        if not events:
            return {}
        at = self._wall()
        keyed = by_key(events)
        keys = [key for key, _ in keyed]
        groups = outcome_log.stamps(keyed, outcome_log.dead_kind(code), at, status, code, response)
        store = self._store
        bound, oldest_kept = self._dead.max_bytes, self._dead.oldest_kept(at)

        def job() -> tuple[dict[ShardKey, Oldest] | None, int | None, Pruned | None]:
            for group, stamp in groups:
                store.dead_letter([DeadLetter(event, at, reason, response) for event in group], stamp)
            oldest = oldest_of(store, keys)
            pruned = None
            if store.dead_bytes > bound:
                with contextlib.suppress(SpoolFailure):  # the next pruning pass tries again
                    pruned = store.prune(bound, oldest_kept)
            return oldest, used_or_none(store), pruned

        def done(result: tuple[dict[ShardKey, Oldest] | None, int | None, Pruned | None]) -> None:
            self._left(events, result[1], result[0])
            self.outcomes.written()
            if result[2] is not None:
                self._dead.count(result[2])

        oldest, _, _ = await self._run(job, then=done)
        return oldest

    async def prune(self) -> Pruned:
        """Prune dead letters past their age or beyond their bound (oldest first) and keys with nothing left; the
        pruner does this every ``prune_interval`` seconds."""
        store = self._store
        bound, oldest_kept = self._dead.max_bytes, self._dead.oldest_kept(self._wall())

        log_bound, log_kept = self.outcomes.max_bytes, self._wall() - self.outcomes.max_age

        def job() -> tuple[Pruned, int | None, int]:
            return store.prune(bound, oldest_kept), used_or_none(store), store.prune_outcomes(log_bound, log_kept)

        def done(result: tuple[Pruned, int | None, int]) -> None:
            self._bound.measured(result[1])
            self._dead.count(result[0])
            self.outcomes.pruned += result[2]

        pruned, _, _ = await self._run(job, then=done)
        return pruned

    def _left(self, events: Sequence[SpooledEvent], used: int | None, oldest: dict[ShardKey, Oldest] | None) -> None:
        """Events left the store (applied in job order); ``oldest``: their keys' oldest events left, if read."""
        self._bound.measured(used)
        self.pending_events -= len(events)
        self.pending_bytes -= payload_bytes(events)
        if self._recent is not None:
            self._recent.remove(events, oldest)

    # --- the downstream, and reads

    @property
    def supervisor(self) -> Supervisor:
        """The supervisor of the writer and the pruner (for health and metrics)."""
        return self._supervisor

    def subscribe(self, listener: SpoolListener) -> None:
        """Make ``listener`` the spool's downstream: it is told what the store held when it opened (at once, if it is
        open), then every group of events committed or replayed."""
        self._downstream.subscribe(listener, self._last_seq)

    async def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent]:
        """``key``'s next events with seq > after_seq, in seq order, at most ``max_events``, stopping before their
        payloads would exceed ``max_bytes`` (at least one if any). Reads the store's per-key index, never other keys'
        rows; events committed meanwhile are simply found by the next read (the seq is the cursor)."""
        if not self._open:
            raise SpoolFailure("the spool is not open")
        if self._reader is None:
            return self._store.read(key, after_seq, max_bytes, max_events)
        recent = self._recent.read(key, after_seq, max_bytes, max_events) if self._recent is not None else None
        if recent is not None:
            return recent  # just committed: still in memory (see sidecar.spool.recent)
        return await self._reader.run(self._store.read, key, after_seq, max_bytes, max_events)

    async def oldest_accepted_at(self) -> float | None:
        """Acceptance time (Unix) of the oldest undelivered event, or None when the spool is empty."""
        if self.pending_events <= 0 or not self._open:
            return None
        events: list[SpooledEvent] = await self._jobs.offload(self._store.load, 0, 1)
        return events[0].accepted_at if events else None

    async def take_replays(self) -> int:
        """Re-queue dead letters marked for replay, under new seqs given by the writer; return how many."""
        if not self._open:
            raise SpoolFailure("the spool is not open")
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._replays.append(waiter)
        self._wake.set()
        return await waiter

    async def _replay(self) -> None:
        """In the writer: one store job moves every marked dead letter back, numbered from the writer's next seq."""
        waiters, self._replays = self._replays, []
        try:
            events = await self._run(self._store.take_replays, self._last_seq + 1, self._wall(), then=self._replayed)
        except Exception as error:  # the writer must outlive any failure
            exc = error if isinstance(error, SpoolFailure) else SpoolFailure(f"spool write failed: {error!r}")
            if not isinstance(error, SpoolFailure):
                log.exception("spool_replay_failed")
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(len(events))

    def _replayed(self, events: list[SpooledEvent]) -> None:
        """Replayed events are in the queue again (applied in job order, like every store job's effect)."""
        if not events:
            return
        self._last_seq = max(self._last_seq, events[-1].seq)
        self.pending_events += len(events)
        self.pending_bytes += payload_bytes(events)
        if self._recent is not None:
            self._recent.add(events)
        self._downstream.tell(events)
