"""The async shell around the shards: pull from the spool, schedule batches fairly under the rate cap, settle them.

Three kinds of task, all owned by :class:`DeliveryDriver` and cancelled by :meth:`DeliveryDriver.stop`:

* the *pump* moves spooled events into their shards while the events held in memory stay under the read-ahead bound;
  a shard holding more than ``shard_memory_bytes`` (a couple of batches: more cannot leave before its next turns)
  *spills*: its newer events stay on disk and the shard reloads them by seq when it has room. So a busy or parked key
  never fills memory, and a quiet key's event is reached at once however much of a busy key's backlog is on disk;
* the *scheduler* waits for a free in-flight slot and a rate-limiter grant, then gives the request to the next ready
  shard in round-robin order (a busy key cannot starve a quiet one: each ready shard gets one request per turn);
* one *send* task per request, which settles the batch: delivered events leave the spool; a retryable failure pauses
  only its shard (backoff, Retry-After); a refused batch is halved until the offending event is isolated and
  dead-lettered; a 401/403 parks the shard, probes it every ``parked_retry_interval`` and dead-letters its events
  after ``parked_dead_letter_after``.

Every HTTP attempt, retries included, takes one grant from the limiter: retries are scheduled like any batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Protocol

import structlog

from sidecar.batch.accumulator import Shard
from sidecar.deliver.backoff import Backoff
from sidecar.deliver.classify import Delivered, Outcome, PartlyRejected, Permanent, Retry, Split, Unauthorized
from sidecar.deliver.ratelimit import RateLimiter
from sidecar.model import Batch, ShardKey, SpooledEvent, write_key_hash
from sidecar.spool import Spool
from sidecar.tasks import cancel_and_wait

_payload_of = attrgetter("payload")

log = structlog.get_logger("sidecar.delivery")

IDLE_SHARD_SECONDS = 300.0
"""A shard with nothing to do for this long is forgotten (there is no cap on the number of write keys)."""
REPLAY_CHECK_SECONDS = 2.0
"""How often the spool is asked for dead letters marked for replay by `segment-sidecar dead-letters replay`."""


class Sender(Protocol):
    """Makes one HTTP attempt for a batch."""

    async def send(self, batch: Batch) -> Outcome:
        """Send and classify; never raises for HTTP or network failures."""


class DeliveryObserver(Protocol):
    """Told what delivery does, for metrics and the debugger page."""

    def batch_settled(self, batch: Batch, outcome: Outcome, seconds: float) -> None:
        """One attempt finished with ``outcome`` after ``seconds``."""

    def dead_lettered(self, events: Sequence[SpooledEvent], reason: str) -> None:
        """Events were given up on."""

    def rate_limited(self, seconds: float) -> None:
        """A request waited this long for the rate limiter."""


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """The timing and size rules delivery follows (from Settings)."""

    flush_interval: float
    batch_max_bytes: int
    batch_max_events: int
    read_ahead_bytes: int
    shard_memory_bytes: int | None
    """Past this many bytes queued in one shard, its newer events stay on disk (None: never; the memory spool)."""
    max_in_flight: int
    max_event_age: float
    parked_retry_interval: float
    parked_dead_letter_after: float
    backoff: Backoff


@dataclass
class _FlushWaiter:
    target_seq: int
    remaining: int
    done: asyncio.Event


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What a flush saw: totals since start, and what waits on parked keys."""

    delivered: int
    dead_lettered: int
    parked: int
    parked_hashes: tuple[str, ...]
    pending: int = 0


class DeliveryDriver:
    """Moves events from the spool to Segment; see the module docstring."""

    def __init__(
        self,
        spool: Spool,
        limiter: RateLimiter,
        sender: Sender,
        policy: DeliveryPolicy,
        overhead: Callable[[str], int],
        observers: Sequence[DeliveryObserver] = (),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._spool = spool
        self._limiter = limiter
        self._sender = sender
        self._policy = policy
        self._overhead = overhead
        self._observers = tuple(observers)
        self._clock = clock
        self._wall = wall
        self._shards: dict[ShardKey, Shard] = {}
        self._ready: deque[ShardKey] = deque()
        self._in_ready: set[ShardKey] = set()
        self._timers: list[tuple[float, int, ShardKey]] = []
        self._timer_seq = 0
        self._memory_bytes = 0
        self._reload_wanted: set[ShardKey] = set()
        self._changed = asyncio.Event()
        self._memory_freed = asyncio.Event()
        self._slots = asyncio.Semaphore(policy.max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._senders: set[asyncio.Task[None]] = set()
        self._flushes: list[_FlushWaiter] = []
        self._draining = False
        self.delivered = 0
        self.dead_lettered_total = 0
        self.requests = 0

    # --- lifecycle

    async def start(self) -> None:
        """Start the pump and the scheduler; returns at once."""
        if self._tasks:
            return
        for name, work in (("pump", self._pump), ("scheduler", self._schedule)):
            self._tasks.add(asyncio.create_task(work(), name=f"delivery-{name}"))

    async def stop(self) -> None:
        """Cancel everything; batches in flight stay in the spool and are sent again on the next start."""
        await cancel_and_wait(self._tasks | self._senders)
        self._tasks.clear()
        self._senders.clear()

    async def drain(self, deadline: float) -> None:
        """Send what is deliverable until ``deadline`` (monotonic); stop early once nothing deliverable is left."""
        self._draining = True
        self._wake_all()
        while self._clock() < deadline and self._deliverable_left(deadline):
            self._changed.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(0.5, max(0.0, deadline - self._clock()))):
                    await self._settled_once()

    def _deliverable_left(self, deadline: float) -> bool:
        if self._senders or self._spool.pending_events == 0:
            return bool(self._senders)
        if self._memory_bytes == 0:
            return True  # events remain on disk: the pump will bring them in
        for shard in self._shards.values():
            due = shard.due_at(0.0)
            if due is not None and shard.parked_since is None and due < deadline:
                return True
        return False

    async def _settled_once(self) -> None:
        self._memory_freed.clear()
        await self._memory_freed.wait()

    # --- flush

    async def flush(self) -> FlushResult:
        """Wait until everything accepted so far is delivered, dead-lettered or waits on a parked key."""
        waiter = _FlushWaiter(self._spool.last_seq, self._spool.pending_events, asyncio.Event())
        self._flushes.append(waiter)
        self._wake_all()
        try:
            while True:
                parked = await self._parked_count(waiter.target_seq)
                if waiter.remaining - parked <= 0:
                    return await self._flush_result(waiter.target_seq)
                waiter.done.clear()
                await waiter.done.wait()
        finally:
            self._flushes.remove(waiter)

    async def _parked_count(self, upto_seq: int) -> int:
        total = 0
        for shard in self._shards.values():
            if shard.parked_since is not None:
                total += await self._spool.count_for(shard.key[0], shard.key[1], upto_seq)
        return total

    async def _flush_result(self, upto_seq: int) -> FlushResult:
        parked = [s for s in self._shards.values() if s.parked_since is not None]
        count = await self._parked_count(upto_seq)
        hashes = tuple(sorted(write_key_hash(s.key[0]) for s in parked))
        return FlushResult(self.delivered, self.dead_lettered_total, count, hashes)

    def _wake_all(self) -> None:
        for key, shard in self._shards.items():
            if shard.pending or shard.retries:
                self._mark_ready(key)
        self._changed.set()

    @property
    def _forced(self) -> bool:
        return self._draining or bool(self._flushes)

    # --- the pump

    async def _pump(self) -> None:
        now = self._clock()
        next_sweep = now + IDLE_SHARD_SECONDS
        next_replay_check = now
        while True:
            if self._memory_bytes >= self._policy.read_ahead_bytes:
                self._memory_freed.clear()
                await self._memory_freed.wait()
                continue
            for key in list(self._reload_wanted):
                self._reload_wanted.discard(key)
                wanted = self._shards.get(key)
                if wanted is not None:
                    self._maybe_reload(wanted)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REPLAY_CHECK_SECONDS):
                    await self._spool.wait_available()
            events = await self._spool.take(min(4 * 2**20, self._policy.read_ahead_bytes - self._memory_bytes))
            now = self._clock()
            self._add_all(events, now)
            if events:
                self._changed.set()
            if now >= next_sweep:
                self._forget_idle_shards(now)
                next_sweep = now + IDLE_SHARD_SECONDS
            if now >= next_replay_check:
                next_replay_check = now + REPLAY_CHECK_SECONDS
                replays = await self._spool.take_replays()
                if replays:
                    log.info("dead_letters_replayed", events=replays)

    def _add_all(self, events: list[SpooledEvent], now: float) -> None:
        """Hand a take to its shards: grouped first, so that the shard bookkeeping and the readiness check run once
        per shard and take rather than once per event (the pump's share of the ingest hot path, issue 6)."""
        runs: dict[ShardKey, list[SpooledEvent]] = {}
        for event in events:
            key = (event.write_key, event.region)
            run = runs.get(key)
            if run is None:
                runs[key] = [event]
            else:
                run.append(event)
        limit = self._policy.shard_memory_bytes
        for key, run in runs.items():
            shard = self._shard_for(key)
            if shard.spilled or run[0].seq <= shard.loaded_seq:
                for event in run:  # the careful path: a spilled or reloaded shard
                    self._add(event, now)
                continue
            size = sum(map(len, map(_payload_of, run)))
            if limit is not None and shard.pending_bytes + size > limit:
                for event in run:
                    self._add(event, now)
                continue
            shard.add_run(run, size, now)
            self._memory_bytes += size
            self._ready_or_timer(shard, now)

    def _shard_for(self, key: ShardKey) -> Shard:
        shard = self._shards.get(key)
        if shard is None:
            shard = Shard(key, self._overhead(key[0]), self._policy.batch_max_bytes, self._policy.batch_max_events)
            self._shards[key] = shard
        return shard

    def _add(self, event: SpooledEvent, now: float) -> None:
        key = event.shard
        shard = self._shard_for(key)
        if event.seq <= shard.loaded_seq:
            return  # a spilled shard already reloaded it from disk
        if shard.spilled:
            if shard.reloading:
                shard.held.append(event)  # settled once the reload answers
                self._memory_bytes += len(event.payload)
            return  # it stays on disk; the shard reloads it when it has room
        shard.add(event, now)
        self._memory_bytes += len(event.payload)
        limit = self._policy.shard_memory_bytes
        if limit is not None and shard.pending_bytes > limit:
            shard.spilled = True
        self._ready_or_timer(shard, now)

    def _maybe_reload(self, shard: Shard) -> None:
        """Top a spilled shard up from disk once less than one batch is queued in memory."""
        if shard.spilled and not shard.reloading and shard.pending_bytes < shard.max_bytes:
            if self._memory_bytes >= self._policy.read_ahead_bytes:
                self._reload_wanted.add(shard.key)  # the pump reloads it once memory frees up
                return
            shard.reloading = True
            task = asyncio.create_task(self._reload(shard), name="delivery-reload")
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    async def _reload(self, shard: Shard) -> None:
        budget = 2 * shard.max_bytes
        try:
            events = await self._spool.load_shard(shard.key[0], shard.key[1], shard.loaded_seq, budget)
        except BaseException:
            shard.reloading = False
            raise
        now = self._clock()
        for event in events:
            shard.add(event, now)
            self._memory_bytes += len(event.payload)
        held, shard.held = shard.held, []
        if sum(len(e.payload) for e in events) < budget:
            # Everything on disk is in memory now; events that arrived meanwhile follow in seq order.
            shard.spilled = False
            for event in held:
                if event.seq > shard.loaded_seq:
                    shard.add(event, now)
                else:
                    self._memory_bytes -= len(event.payload)
        else:
            self._memory_bytes -= sum(len(e.payload) for e in held)  # still on disk: the next reload reads them
        shard.reloading = False
        self._ready_or_timer(shard, now)
        self._changed.set()

    def _forget_idle_shards(self, now: float) -> None:
        for key in [
            k
            for k, s in self._shards.items()
            if s.idle and s.parked_since is None and now - s.last_active > IDLE_SHARD_SECONDS
        ]:
            del self._shards[key]

    # --- the scheduler

    def _mark_ready(self, key: ShardKey) -> None:
        if key not in self._in_ready:
            self._in_ready.add(key)
            self._ready.append(key)

    def _ready_or_timer(self, shard: Shard, now: float) -> None:
        """Queue the shard for its turn if it is ready now, else set a timer for when it will be."""
        if shard.ready(now, self._policy.flush_interval, self._forced):
            self._mark_ready(shard.key)
        else:
            self._schedule_timer(shard)

    def _schedule_timer(self, shard: Shard) -> None:
        due = shard.due_at(self._policy.flush_interval)
        if due is not None and due < shard.timer_due:
            shard.timer_due = due
            self._timer_seq += 1
            heapq.heappush(self._timers, (due, self._timer_seq, shard.key))
            self._changed.set()

    def _fire_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            due, _, key = heapq.heappop(self._timers)
            shard = self._shards.get(key)
            if shard is None or shard.timer_due != due:
                continue
            shard.timer_due = float("inf")
            self._ready_or_timer(shard, now)

    def _next_ready(self, now: float) -> Shard | None:
        """Round-robin: the first ready shard in turn order; shards not ready after all get a timer instead."""
        self._fire_timers(now)
        while self._ready:
            key = self._ready.popleft()
            self._in_ready.discard(key)
            shard = self._shards.get(key)
            if shard is None:
                continue
            if shard.ready(now, self._policy.flush_interval, self._forced):
                return shard
            self._schedule_timer(shard)
        return None

    async def _wait_for_work(self) -> None:
        self._fire_timers(self._clock())
        if self._ready:
            return
        timeout = self._timers[0][0] - self._clock() if self._timers else None
        self._changed.clear()
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races with the event.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()

    async def _schedule(self) -> None:
        while True:
            await self._wait_for_work()
            if not self._ready:
                continue
            await self._slots.acquire()
            waited = self._clock()
            await self._limiter.acquire()
            waited = self._clock() - waited
            for observer in self._observers:
                observer.rate_limited(waited)
            now = self._clock()
            shard = self._next_ready(now)
            if shard is None:
                self._slots.release()  # the grant is given up: the limiter never hands out a start twice
                continue
            batch = await self._drop_expired(shard, shard.next_batch())
            self._maybe_reload(shard)
            if batch is None:
                self._slots.release()
                continue
            self._ready_or_timer(shard, now)  # back of the line: one request per ready shard per turn
            shard.in_flight += 1
            self.requests += 1
            task = asyncio.create_task(self._send(shard, batch), name="delivery-send")
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    async def _drop_expired(self, shard: Shard, batch: Batch) -> Batch | None:
        """Dead-letter events older than max_event_age (from acceptance), and a parked key's events past its limit."""
        wall = self._wall()
        now = self._clock()
        if shard.parked_since is not None and now - shard.parked_since >= self._policy.parked_dead_letter_after:
            events = batch.events + shard.drain_all()
            await self._dead_letter(
                shard, events, "write key refused (401/403) for longer than SIDECAR_PARKED_DEAD_LETTER_AFTER", ""
            )
            # A new parking period begins: the key is still probed, so a customer who fixes it gets through.
            shard.parked_since = now
            return None
        oldest_allowed = wall - self._policy.max_event_age
        if batch.events and batch.events[0].accepted_at >= oldest_allowed:
            return batch
        expired = [e for e in batch.events if e.accepted_at < oldest_allowed]
        if expired:
            await self._dead_letter(shard, expired, "not delivered within SIDECAR_MAX_EVENT_AGE", "")
        kept = [e for e in batch.events if e.accepted_at >= oldest_allowed]
        if not kept:
            return None
        batch.events = kept
        batch.payload_bytes = sum(len(e.payload) + 1 for e in kept)
        return batch

    # --- settling

    async def _send(self, shard: Shard, batch: Batch) -> None:
        started = self._clock()
        if not batch.first_attempt_at:
            batch.first_attempt_at = started
        try:
            outcome = await self._sender.send(batch)
            for observer in self._observers:
                observer.batch_settled(batch, outcome, self._clock() - started)
            await self._settle(shard, batch, outcome)
        finally:
            shard.in_flight -= 1
            self._slots.release()
            self._memory_freed.set()
            self._changed.set()

    async def _settle(self, shard: Shard, batch: Batch, outcome: Outcome) -> None:
        now = self._clock()
        hashed = write_key_hash(shard.key[0])
        if isinstance(outcome, Delivered):
            shard.failing = False
            await self._spool.remove(batch.events)
            self._forget(batch.events)
            self.delivered += len(batch.events)
            if shard.parked_since is not None:
                log.info("write_key_unparked", write_key_hash=hashed, region=shard.key[1].value)
                shard.parked_since = None
            log.info(
                "batch_delivered",
                write_key_hash=hashed,
                region=shard.key[1].value,
                events=len(batch.events),
                bytes=batch.payload_bytes,
                status=outcome.status,
                attempts=batch.attempts + 1,
                seconds=round(now - batch.first_attempt_at, 3),
            )
        elif isinstance(outcome, Retry):
            shard.failing = True
            delay = self._policy.backoff.delay(batch.attempts, outcome.after)
            batch.attempts += 1
            shard.retries.append(batch)
            shard.paused_until = max(shard.paused_until, now + delay)
            log.warning(
                "batch_retry",
                write_key_hash=hashed,
                region=shard.key[1].value,
                reason=outcome.reason,
                attempt=batch.attempts,
                delay=round(delay, 3),
            )
        elif isinstance(outcome, Split):
            if len(batch.events) > 1:
                shard.split(batch)
                log.warning(
                    "batch_split",
                    write_key_hash=hashed,
                    region=shard.key[1].value,
                    reason=outcome.reason,
                    events=len(batch.events),
                )
            else:
                await self._dead_letter(shard, batch.events, "Segment refused the event", outcome.reason)
        elif isinstance(outcome, Unauthorized):
            shard.failing = True
            if shard.parked_since is None:
                shard.parked_since = now
                log.error(
                    "write_key_parked",
                    write_key_hash=hashed,
                    region=shard.key[1].value,
                    reason=outcome.reason,
                    retry_in=self._policy.parked_retry_interval,
                    hint="the write key is revoked or belongs to the other region",
                )
            batch.attempts += 1
            shard.retries.appendleft(batch)
            shard.paused_until = now + self._policy.parked_retry_interval
            for waiter in self._flushes:
                waiter.done.set()  # a flush does not wait for a parked key: let it recount
        elif isinstance(outcome, Permanent):
            shard.failing = False
            await self._dead_letter(shard, batch.events, "Segment refused the batch", outcome.reason)
        elif isinstance(outcome, PartlyRejected):
            # A gateway (edge mode) took every event but the refused ones, which become dead letters with its reason.
            shard.failing = False
            refused = {index: reason for index, reason in outcome.rejected if 0 <= index < len(batch.events)}
            kept = [event for index, event in enumerate(batch.events) if index not in refused]
            by_reason: dict[str, list[SpooledEvent]] = {}
            for index, reason in refused.items():
                by_reason.setdefault(reason, []).append(batch.events[index])
            for reason, events in by_reason.items():
                await self._dead_letter(shard, events, "the gateway refused the event", reason)
            if kept:
                await self._spool.remove(kept)
                self._forget(kept)
                self.delivered += len(kept)
        self._schedule_timer(shard)
        if shard.ready(now, self._policy.flush_interval, self._forced):
            self._mark_ready(shard.key)

    async def _dead_letter(self, shard: Shard, events: list[SpooledEvent], reason: str, response: str) -> None:
        if not events:
            return
        await self._spool.dead_letter(events, reason, response)
        self._forget(events)
        self.dead_lettered_total += len(events)
        for observer in self._observers:
            observer.dead_lettered(events, reason)
        log.error(
            "events_dead_lettered",
            write_key_hash=write_key_hash(shard.key[0]),
            region=shard.key[1].value,
            events=len(events),
            reason=reason,
            response=response[:300],
        )

    def _forget(self, events: Sequence[SpooledEvent]) -> None:
        self._memory_bytes -= sum(len(e.payload) for e in events)
        for waiter in self._flushes:
            settled = sum(1 for e in events if e.seq <= waiter.target_seq)
            if settled:
                waiter.remaining -= settled
                waiter.done.set()
        if self._flushes and any(s.parked_since is not None for s in self._shards.values()):
            for waiter in self._flushes:
                waiter.done.set()
