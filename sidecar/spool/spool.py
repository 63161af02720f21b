"""The spool: a durable queue. The gRPC edge appends to it; the batch driver consumes from it.

One writer owns the seqs: the writer task numbers each group of appends when it commits it, and moves replayed dead
letters back into the queue between two commits, so an append and a replay can never be given the same seq (issue 13:
they once were, and one overwrote the other); the store refuses to overwrite a row rather than replace it.

``append`` returns only once its events are committed (with ``SIDECAR_SPOOL=disk``, fsync'd), which is when a call is
acknowledged. Concurrent appends share one commit (group commit): while one commit runs on the store's thread, new
appends gather, and the next commit takes all of them. Committed events are not kept in memory: delivery reads each
key's next events back from the store (so a backlog of millions of events lives on disk, not in RAM).

An event leaves the spool through :meth:`Spool.remove` (Segment answered 2xx) or :meth:`Spool.dead_letter`.

Per key: the spool knows every (write key, region)'s :class:`~sidecar.spool.store.Backlog` (events, bytes, oldest
event) without loading its events, updated in O(1) per key per commit or removal, and tells subscribers when one
changes; :meth:`Spool.read` returns a key's next events from the store's index (SQLite: on a read connection and
thread of its own, beside the writer). Every store job's effect on the backlogs is applied on the event loop in the
order the jobs ran on the store's thread (in the job's done callback), so the backlogs always describe the store as
of the last job applied, whoever awaited it.

Bounds: a disk spool counts what its files occupy (measured after removals, and after commits every 50 ms or every
time near the bound; estimated in between) against ``max_bytes``, and refuses appends past it with
:class:`~sidecar.errors.CapacityExhausted` (RESOURCE_EXHAUSTED with a retry delay). Dead letters are pruned, oldest
first, past their own bound and age, by the dead-letter job that overflows them and by a pruner task.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

import structlog

from sidecar.errors import CapacityExhausted, SpoolFailure
from sidecar.model import Event, ShardKey, SpooledEvent
from sidecar.spool.store import Backlog, DeadLetter, Pruned, Store, now

T = TypeVar("T")

BacklogListener = Callable[[ShardKey, Backlog | None], None]
"""Told, on the event loop, a key's new backlog whenever it changes; None when the key has nothing left."""

log = structlog.get_logger("sidecar.spool")

LONE_COMMIT_MAX_EVENTS = 128
"""A group of one append of up to this many events commits on the event loop (see ``Spool._commit``); a bigger one,
whose rows take milliseconds to insert, goes to the store's thread so that the loop keeps serving meanwhile."""

LONE_COMMIT_GAP = 0.001
"""Seconds since the last commit after which a group of one counts as a lone caller rather than overlapping calls."""

FULL_RETRY_AFTER = 1.0
"""Seconds a caller is told to wait when the spool is full; delivery frees space continuously."""

ROW_OVERHEAD_BYTES = 160
"""What a disk spool counts per appended event beyond its payload until the disk is measured again: its row (seq, key
id, message id up to 99 bytes, accepted_at, record header), its index entry and page slack. The whole estimate counts
twice: a commit's pages go to the WAL first and into the database at the next checkpoint."""

MEASURE_INTERVAL = 0.05
"""Seconds between measurements of the disk after commits (a removal or a commit near the bound always measures)."""

MEASURE_ALWAYS_ABOVE = 0.8
"""Share of the bound past which every commit measures the disk."""

DEFAULT_DEAD_LETTER_MAX_BYTES = 256 * 2**20
DEFAULT_DEAD_LETTER_MAX_AGE = 7 * 86400.0
PRUNE_INTERVAL = 10.0
"""Seconds between prunings of dead letters past their age (those beyond their bound go as soon as they arrive)."""


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
    ) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._dead_letter_max_bytes = min(dead_letter_max_bytes, max_bytes // 4)
        self._dead_letter_max_age = dead_letter_max_age
        self._prune_interval = prune_interval
        self._pruner: asyncio.Task[None] | None = None
        self.dead_letters_pruned = 0
        """Dead letters pruned since start (past their age or beyond their bound), for the metrics."""
        self.dead_letters_pruned_bytes = 0
        """Their bytes (as counted against the bound)."""
        # Disk accounting (a disk store): measured bytes, plus estimates of what was committed since the last
        # measurement and of appends not yet committed.
        self._disk_used = 0
        self._disk_unmeasured = 0
        self._reserved = 0
        self._measured_at = 0.0
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[_PendingAppend] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False
        self._replays: list[asyncio.Future[int]] = []  # callers of take_replays, served by the writer
        self._last_seq = 0  # assigned only by the writer (or inline, on the loop, for a store that never blocks)
        self.pending_events = 0
        self.pending_bytes = 0
        self.appended_total = 0
        self.recovered = 0
        self._open = False
        self._store_busy = 0  # store calls running on the store's thread
        self._last_commit_end = 0.0
        self._reader: ThreadPoolExecutor | None = None  # per-key reads of a store that blocks
        self._backlogs: dict[ShardKey, Backlog] = {}
        self._backlogs_view: Mapping[ShardKey, Backlog] = MappingProxyType(self._backlogs)
        self._listeners: list[BacklogListener] = []

    # --- lifecycle

    async def start(self) -> None:
        """Open the store and recover what a previous run left; events found are delivered again."""
        if self._open:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        recovery = await self._run(self._store.open, self._max_bytes)
        if self._store.on_disk:
            self._disk_used = await self._run(self._store.used_bytes)
            self._disk_unmeasured = self._reserved = 0
            self._measured_at = time.monotonic()
        if not self._store.inline:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-read")
        self._last_seq = recovery.last_seq
        self.pending_events = sum(backlog.events for backlog in recovery.backlogs.values())
        self.pending_bytes = sum(backlog.bytes for backlog in recovery.backlogs.values())
        self.recovered = self.pending_events
        self._open = True
        self._stopping = False
        self._writer = asyncio.create_task(self._write_loop(), name="spool-writer")
        self._pruner = asyncio.create_task(self._prune_loop(), name="spool-pruner")
        for key, backlog in recovery.backlogs.items():
            self._set_backlog(key, backlog)

    async def stop(self) -> None:
        """Commit what is pending, then close the store; idempotent and safe without start."""
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        if self._writer is not None:
            # The writer finishes what it was given (a commit cut short would leave its callers waiting forever).
            self._stopping = True
            self._wake.set()
            await self._writer
            self._writer = None
        if self._reader is not None:
            self._reader.shutdown(wait=True)
            self._reader = None
        if self._executor is not None:
            await self._run(self._store.close)
            self._executor.shutdown(wait=True)
            self._executor = None
        self._open = False

    async def _run(self, function: Callable[..., T], *args: object, then: Callable[[T], None] | None = None) -> T:
        """Run a store job (on the store's thread unless the store is inline); ``then`` applies its result to the
        spool's bookkeeping on the loop, in job order, even when the caller stopped waiting."""
        assert self._executor is not None, "spool used before start()"
        if self._store.inline:
            result = function(*args)
            if then is not None:
                then(result)
            return result
        return await self._offload(function, *args, then=then)

    async def _offload(self, function: Callable[..., T], *args: object, then: Callable[[T], None] | None = None) -> T:
        """On the store's thread even for an inline store (a scan that may be long)."""
        assert self._executor is not None, "spool used before start()"
        loop = asyncio.get_running_loop()
        # A lone commit must not use the connection while the thread does: counted until the thread is done with the
        # job, even when the caller stops waiting for it (a Flush deadline), hence the callback on the job itself.
        # The same callback applies the job's effect, so effects are applied in the order the thread ran the jobs,
        # before any later job's, and before a lone commit on the loop can run.
        self._store_busy += 1
        job = self._executor.submit(function, *args)
        job.add_done_callback(lambda _: self._call_soon_threadsafe(loop, lambda: self._store_job_done(job, then)))
        return await asyncio.wrap_future(job, loop=loop)

    @staticmethod
    def _call_soon_threadsafe(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing is left to coordinate
            loop.call_soon_threadsafe(callback)

    def _store_job_done(self, job: Future[T], then: Callable[[T], None] | None) -> None:
        self._store_busy -= 1
        if then is not None and not job.cancelled() and job.exception() is None:
            then(job.result())

    # --- the write side

    @property
    def last_seq(self) -> int:
        """The seq of the newest acknowledged event."""
        return self._last_seq

    async def append(self, events: Sequence[Event]) -> list[SpooledEvent]:
        """Make events durable; return them with their seqs. Raises CapacityExhausted or SpoolFailure."""
        if not events:
            return []
        if not self._open:
            raise SpoolFailure("the spool is not open")
        size = 0
        for event in events:
            size += len(event.payload)
        estimate = 0
        if not self._store.on_disk:
            if self.pending_bytes + size > self._max_bytes:
                raise CapacityExhausted(
                    f"the spool holds {self.pending_bytes} bytes of undelivered events, its limit is "
                    f"{self._max_bytes} (SIDECAR_SPOOL_MAX_BYTES); retry shortly with the same message ids",
                    FULL_RETRY_AFTER,
                )
        else:
            estimate = self._estimate(events, size)
            used = self._disk_used + self._disk_unmeasured + self._reserved
            if used + estimate > self._max_bytes:
                raise CapacityExhausted(
                    f"the spool uses {used} bytes on disk (undelivered events, dead letters, indexes and log), its "
                    f"limit is {self._max_bytes} (SIDECAR_SPOOL_MAX_BYTES); retry shortly with the same message ids",
                    FULL_RETRY_AFTER,
                )
            self._reserved += estimate
        spooled = list(events)
        # Count the bytes now so that concurrent appends see the spool fill up before their commit.
        self.pending_bytes += size
        self.pending_events += len(spooled)
        if self._store.inline:
            # A store that never blocks (memory) is written at once: no writer task, no thread hop, no future, which
            # are most of a unary call's cost in the spool (issue 6 profile). Numbered here: nothing else can run on
            # the loop between the numbering and the insert.
            self._number(spooled)
            self._store.insert(spooled)
            self._add_backlogs(spooled)
            self.appended_total += len(spooled)
            return spooled
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

    def _estimate(self, events: Sequence[Event], size: int) -> int:
        """Disk bytes these events will take until measured: payloads, rows and any key not stored yet."""
        estimate = size + ROW_OVERHEAD_BYTES * len(events)
        backlogs = self._backlogs
        if len(events) == 1:
            event = events[0]
            if (event.write_key, event.region) not in backlogs:
                estimate += len(event.write_key)
            return 2 * estimate
        for key in {(event.write_key, event.region) for event in events}:
            if key not in backlogs:
                estimate += len(key[0])
        return 2 * estimate

    @property
    def disk_bytes(self) -> int:
        """What a disk spool occupies on disk, as last measured plus estimates of commits since (0 for memory)."""
        return self._disk_used + self._disk_unmeasured

    def _should_measure(self) -> bool:
        """Whether the next commit measures the disk: every 50 ms, and every time near the bound."""
        if not self._store.on_disk:
            return False
        now_ = time.monotonic()
        used = self._disk_used + self._disk_unmeasured + self._reserved
        if now_ - self._measured_at >= MEASURE_INTERVAL or used > self._max_bytes * MEASURE_ALWAYS_ABOVE:
            self._measured_at = now_
            return True
        return False

    def _measured(self, used: int | None) -> None:
        """A store job measured the disk after its work (applied in job order: every earlier commit is in it)."""
        if used is not None:
            self._disk_used = used
            self._disk_unmeasured = 0

    def _number(self, events: Sequence[SpooledEvent]) -> None:
        """Give events the next seqs. Only the writer calls this (or an inline append, which runs to its end)."""
        seq = self._last_seq
        for event in events:
            seq += 1
            event.seq = seq
        self._last_seq = seq

    async def _write_loop(self) -> None:
        """The one writer: commits groups of appends and moves replays back into the queue, one at a time."""
        while True:
            if self._pending:
                await self._commit(self._take_pending())
            elif self._replays:
                await self._replay()
            elif self._stopping:
                return
            else:
                await self._wake.wait()
                self._wake.clear()

    async def _commit(self, group: list[_PendingAppend]) -> None:
        events = [event for pending in group for event in pending.events]
        size = sum(pending.size for pending in group)
        estimate = sum(pending.estimate for pending in group)
        measure = self._should_measure()
        store = self._store

        def insert() -> int | None:
            store.insert(events)
            return store.used_bytes() if measure else None

        def inserted(used: int | None) -> None:
            self._reserved -= estimate
            self._disk_unmeasured += estimate
            self._measured(used)
            self._add_backlogs(events)

        # Numbered here, by the writer, never before: seqs of a failed commit are not given again (its rows cannot
        # have been kept, but a failed fsync leaves that uncertain, and a skipped seq costs nothing).
        self._number(events)
        try:
            started = time.monotonic()
            if (
                len(group) == 1
                and len(events) <= LONE_COMMIT_MAX_EVENTS
                and self._store_busy == 0
                and started - self._last_commit_end > LONE_COMMIT_GAP
            ):
                # A lone append (one caller, and the last commit a while ago) has nobody to share the fsync with, and
                # the hop to the store's thread and back costs more than the commit: commit here, on the loop (issue
                # 6, unary latency at concurrency 1). Back-to-back commits mean overlapping calls: those go to the
                # thread, so that the loop reads the next calls during the fsync.
                inserted(insert())
            else:
                await self._run(insert, then=inserted)
            self._last_commit_end = time.monotonic()
        except Exception as error:  # the writer must outlive any failure, or every later append would hang
            exc = error if isinstance(error, SpoolFailure) else SpoolFailure(f"spool write failed: {error!r}")
            if not isinstance(error, SpoolFailure):
                log.exception("spool_commit_failed")
            self._reserved -= estimate
            self.pending_bytes -= size
            self.pending_events -= len(events)
            for pending in group:
                if not pending.done.done():
                    pending.done.set_exception(exc)
            return
        self.appended_total += len(events)
        for pending in group:
            if not pending.done.done():
                pending.done.set_result(None)

    # --- removal, dead letters and pruning

    async def remove(self, events: Sequence[SpooledEvent]) -> None:
        """Segment accepted these: forget them (and update their keys' backlogs)."""
        if not events:
            return
        seqs = [e.seq for e in events]
        keys = _keys_of(events)
        store = self._store

        def job() -> tuple[dict[ShardKey, tuple[int, float]] | None, int | None]:
            store.delete(seqs)
            return _settle(store, keys), _used_or_none(store)

        await self._run(job, then=lambda result: self._forget(events, *result))

    async def dead_letter(self, events: Sequence[SpooledEvent], reason: str, response: str) -> None:
        """Give these up, keeping them with the reason and Segment's answer."""
        if not events:
            return
        at = now()
        letters = [DeadLetter(e, at, reason, response) for e in events]
        keys = _keys_of(events)
        store = self._store
        bound = self._dead_letter_max_bytes
        oldest_kept = at - self._dead_letter_max_age

        def job() -> tuple[dict[ShardKey, tuple[int, float]] | None, int | None, Pruned | None]:
            store.dead_letter(letters)
            settled = _settle(store, keys)
            pruned = None
            if store.dead_bytes > bound:
                with contextlib.suppress(SpoolFailure):  # the next pruning pass tries again
                    pruned = store.prune(bound, oldest_kept)
            return settled, _used_or_none(store), pruned

        def done(result: tuple[dict[ShardKey, tuple[int, float]] | None, int | None, Pruned | None]) -> None:
            self._forget(events, result[0], result[1])
            if result[2] is not None:
                self._pruned(result[2])

        await self._run(job, then=done)

    async def prune(self) -> Pruned:
        """Prune dead letters past their age or beyond their bound (oldest first) and keys with nothing left; the
        pruner task does this every ``prune_interval`` seconds."""
        store = self._store
        bound, oldest_kept = self._dead_letter_max_bytes, now() - self._dead_letter_max_age

        def job() -> tuple[Pruned, int | None]:
            return store.prune(bound, oldest_kept), _used_or_none(store)

        def done(result: tuple[Pruned, int | None]) -> None:
            self._measured(result[1])
            self._pruned(result[0])

        pruned, _ = await self._run(job, then=done)
        return pruned

    def _pruned(self, pruned: Pruned) -> None:
        count = pruned.by_age + pruned.by_bytes
        if count:
            self.dead_letters_pruned += count
            self.dead_letters_pruned_bytes += pruned.bytes
            log.warning(
                "dead_letters_pruned",
                past_age=pruned.by_age,
                beyond_bound=pruned.by_bytes,
                bytes=pruned.bytes,
                max_bytes=self._dead_letter_max_bytes,
                max_age_seconds=self._dead_letter_max_age,
            )

    async def _prune_loop(self) -> None:
        """Every ``prune_interval``: prune; a failure is logged and retried at the next turn."""
        while True:
            await asyncio.sleep(self._prune_interval)
            try:
                await self.prune()
            except SpoolFailure as exc:
                log.warning("dead_letters_prune_failed", error=str(exc))

    def _forget(
        self,
        events: Sequence[SpooledEvent],
        oldest: dict[ShardKey, tuple[int, float]] | None,
        used: int | None = None,
    ) -> None:
        """Events left the store; ``oldest`` is each key's oldest event left, read in the same store job (None when
        that read failed: the old oldest stays, which is older than the truth, never newer)."""
        self._measured(used)
        self.pending_events -= len(events)
        removed: dict[ShardKey, list[int]] = {}
        size = 0
        for event in events:
            length = len(event.payload)
            size += length
            counts = removed.get((event.write_key, event.region))
            if counts is None:
                removed[(event.write_key, event.region)] = [1, length]
            else:
                counts[0] += 1
                counts[1] += length
        self.pending_bytes -= size
        for key, (count, length) in removed.items():
            backlog = self._backlogs.get(key)
            if backlog is None:
                continue
            left = backlog.events - count
            if oldest is None:
                if left <= 0:
                    self._set_backlog(key, None)
                else:
                    self._set_backlog(
                        key, Backlog(left, backlog.bytes - length, backlog.oldest_seq, backlog.oldest_accepted_at)
                    )
                continue
            first = oldest.get(key)
            if first is None:  # the store is the truth about emptiness
                self._set_backlog(key, None)
            else:
                self._set_backlog(key, Backlog(max(left, 1), max(backlog.bytes - length, 0), first[0], first[1]))

    # --- per-key bookkeeping and reads

    def backlog(self, key: ShardKey) -> Backlog | None:
        """What ``key`` has waiting (from memory); None when nothing waits."""
        return self._backlogs.get(key)

    def backlogs(self) -> Mapping[ShardKey, Backlog]:
        """A read-only, live view of every key with events waiting."""
        return self._backlogs_view

    def subscribe(self, listener: BacklogListener) -> None:
        """Call ``listener(key, backlog)`` on the loop whenever a key's backlog changes (None: nothing left).

        Changes come after a commit, a remove, a dead-letter, a replay, and, at :meth:`start`, once per recovered
        key (a listener subscribed after start reads :meth:`backlogs` for those).
        """
        self._listeners.append(listener)

    async def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent]:
        """``key``'s next events with seq > after_seq, in seq order, at most ``max_events``, stopping before their
        payloads would exceed ``max_bytes`` (at least one if any). Reads the store's per-key index, never other keys'
        rows; events committed meanwhile are simply found by the next read (the seq is the cursor)."""
        if not self._open:
            raise SpoolFailure("the spool is not open")
        if self._reader is None:
            return self._store.read(key, after_seq, max_bytes, max_events)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._store.read, key, after_seq, max_bytes, max_events)

    def _add_backlogs(self, events: Sequence[SpooledEvent]) -> None:
        """Committed events (in seq order) join their keys' backlogs: one update per key."""
        if len(events) == 1:
            event = events[0]
            self._grow((event.write_key, event.region), 1, len(event.payload), event)
            return
        added: dict[ShardKey, list[int]] = {}
        firsts: dict[ShardKey, SpooledEvent] = {}
        for event in events:
            key = (event.write_key, event.region)
            counts = added.get(key)
            if counts is None:
                added[key] = [1, len(event.payload)]
                firsts[key] = event
            else:
                counts[0] += 1
                counts[1] += len(event.payload)
        for key, (count, size) in added.items():
            self._grow(key, count, size, firsts[key])

    def _grow(self, key: ShardKey, count: int, size: int, first: SpooledEvent) -> None:
        backlog = self._backlogs.get(key)
        if backlog is None:
            self._set_backlog(key, Backlog(count, size, first.seq, first.accepted_at))
        else:
            self._set_backlog(
                key,
                Backlog(backlog.events + count, backlog.bytes + size, backlog.oldest_seq, backlog.oldest_accepted_at),
            )

    def _set_backlog(self, key: ShardKey, backlog: Backlog | None) -> None:
        if backlog is None:
            if self._backlogs.pop(key, None) is None:
                return
        else:
            self._backlogs[key] = backlog
        for listener in self._listeners:
            try:
                listener(key, backlog)
            except Exception:  # a listener's bug must not undo the bookkeeping of a job already done
                log.exception("spool_listener_failed")

    async def oldest_accepted_at(self) -> float | None:
        """Acceptance time (Unix) of the oldest undelivered event, or None when the spool is empty."""
        if self.pending_events <= 0 or not self._open:
            return None
        events: list[SpooledEvent] = await self._offload(self._store.load, 0, 1)
        return events[0].accepted_at if events else None

    async def take_replays(self) -> int:
        """Re-queue dead letters marked for replay, under new seqs given by the writer; return how many."""
        if not self._open:
            raise SpoolFailure("the spool is not open")
        if self._store.inline:
            events = self._store.take_replays(self._last_seq + 1)
            self._replayed(events)
            return len(events)
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._replays.append(waiter)
        self._wake.set()
        return await waiter

    async def _replay(self) -> None:
        """In the writer: one store job moves every marked dead letter back, numbered from the writer's next seq."""
        waiters, self._replays = self._replays, []
        try:
            events = await self._run(self._store.take_replays, self._last_seq + 1, then=self._replayed)
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
        self.pending_bytes += sum(len(e.payload) for e in events)
        self._add_backlogs(events)


def _keys_of(events: Iterable[SpooledEvent]) -> list[ShardKey]:
    """The distinct keys of some events, in first-seen order."""
    return list(dict.fromkeys((event.write_key, event.region) for event in events))


def _settle(store: Store, keys: list[ShardKey]) -> dict[ShardKey, tuple[int, float]] | None:
    """The keys' oldest events after a removal, or None when that read failed (the removal itself succeeded)."""
    try:
        return store.settle(keys)
    except SpoolFailure:
        return None


def _used_or_none(store: Store) -> int | None:
    """The store's bytes on disk after a job, or None (memory, or the measurement failed: the next one counts)."""
    if not store.on_disk:
        return None
    try:
        return store.used_bytes()
    except SpoolFailure:
        return None
