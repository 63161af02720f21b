"""The dispatcher: the thin async shell around the scheduler core. Spool news in, requests out, outcomes settled.

The policy lives in pure code: :mod:`sidecar.delivery.scheduler` owns every key's state and says which key sends next
and when; :func:`sidecar.delivery.decide.decide` says what an outcome means. This shell only does the I/O, under a
:class:`~sidecar.tasks.Supervisor`:

* the spool tells it what joined the queue (:class:`~sidecar.delivery.interfaces.SpoolListener`: recovered at start,
  appended, replayed), which it counts into the scheduler;
* the *dispatcher* loop asks the scheduler for the next take, or sleeps until its next timer or a change;
* one *request* task per take reads the key's next events from the spool (by key, so parked or busy keys hold
  nothing in memory); then, for each batch, admission happens here and only here: the sender authorises the attempt
  (an OAuth key may wait for its token), then the rate limiter grants it, then the sender starts the request at
  once. The decision is applied to the spool (remove, dead-letter) and settled in the scheduler with what left the
  spool. A failing spool call or sender is logged once with its traceback, the key backs off (the scheduler's
  backoff; its events are still in the spool), and the unit is reported (health NOT_SERVING) until it succeeds again;
* the *replays* loop re-queues dead letters marked for replay by ``segment-sidecar dead-letters replay``.

Admission and the read-ahead: with a rate limiter, a batch is chosen as late as possible, since one waiting at the
limiter cannot fill up any more and a key that becomes ready waits behind every request already taken. So at most
:data:`AHEAD_OF_THE_LIMITER` requests are being read or wait for a grant; one that waits for its credentials does not
count (it holds no grant and keeps no other key from being chosen).

Flush waits, on an event set by the settling of requests, until every event counted into the scheduler before the
call has left the spool, except events of parked keys, which it reports. Timers use the monotonic clock; wall time is
only read to judge an event's age from its ``accepted_at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Mapping, Sequence

import structlog

from sidecar.delivery.decide import Decision, DecisionRules, GiveUp, Remove, RemoveExcept, decide
from sidecar.delivery.decision_log import log_decision
from sidecar.delivery.flushes import Flushes
from sidecar.delivery.interfaces import DeliveryObserver, DeliveryPolicy, DeliverySpool, FlushResult, Sender
from sidecar.delivery.key_status import KeyBook
from sidecar.delivery.keys import joined_by_key
from sidecar.delivery.scheduler import Oldest, Scheduler, SchedulerPolicy, Take, TakeKind
from sidecar.model import Backlog, Batch, DeadLetterReason, ShardKey, SpooledEvent, write_key_hash
from sidecar.send.auth import Authorization
from sidecar.send.classify import Delivered, Outcome, PartlyRejected
from sidecar.send.ratelimit import RateLimiter
from sidecar.tasks import Supervision, Supervisor

__all__ = ["DeliveryObserver", "DeliveryPolicy", "DeliverySpool", "Dispatcher", "FlushResult", "Sender"]

log = structlog.get_logger("sidecar.delivery")

REPLAY_CHECK_SECONDS = 2.0
"""How often the spool is asked for dead letters marked for replay (the mark is made by another process)."""
AHEAD_OF_THE_LIMITER = 3
"""Requests being read or waiting for their rate-limiter grant at once (see the module docstring)."""


class _Gone:
    """What one request removed from the spool so far, and the spool's last word on the key's oldest event."""

    __slots__ = ("events", "gateway", "oldest", "status")

    def __init__(self) -> None:
        self.status = 0  # Segment's status in the answer that decided (for the outcome records)
        self.gateway = ""  # the gateway that accepted the events (an edge): their final records come from it
        self.events: list[SpooledEvent] = []
        self.oldest: Oldest | None = None

    def note(self, events: Sequence[SpooledEvent], oldest: Mapping[ShardKey, Oldest] | None, key: ShardKey) -> None:
        self.events.extend(events)
        if oldest is not None and key in oldest:
            self.oldest = oldest[key]


class Dispatcher:
    """Moves events from the spool to the sender; see the module docstring."""

    def __init__(
        self,
        spool: DeliverySpool,
        sender: Sender,
        policy: DeliveryPolicy,
        overhead: Callable[[str], int],
        observers: Sequence[DeliveryObserver] = (),
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_health_change: Callable[[], None] | None = None,
        supervision: Supervision | None = None,
    ) -> None:
        self._spool = spool
        self._sender = sender
        self._limiter = limiter
        self._policy = policy
        self._observers = tuple(observers)
        self._clock = clock
        self._wall = wall
        self._scheduler = Scheduler(
            SchedulerPolicy(
                policy.flush_interval,
                policy.batch_max_bytes,
                policy.batch_max_events,
                policy.max_in_flight,
                policy.parked_dead_letter_after,
                policy.backoff,
            ),
            overhead,
            clock_of=self._clock_of,
        )
        self._rules = DecisionRules(policy.backoff, policy.parked_retry_interval)
        self._supervisor = Supervisor("delivery", on_health_change, supervision=supervision)
        self._wake = asyncio.Event()  # the dispatcher's: something may be ready
        self._change = asyncio.Event()  # replaced at each settle: a drain takes it before checking its condition
        self._subscribed = False
        self._running = False
        self._flushes = Flushes(self._scheduler)
        self._draining = False
        self._seen_seq = 0  # the highest seq counted into the scheduler
        self._ahead = 0  # requests being read or waiting for a grant (with a limiter)
        self.keys = KeyBook()  # each key's state as Segment's answers say it, stored on every change
        self.delivered = 0
        self.dead_lettered_total = 0
        self.requests = 0

    def _clock_of(self, accepted_at: float) -> float:
        """An acceptance time (Unix seconds) on the monotonic clock; never later than now, so that a wall clock
        stepped back makes an old event look at most just accepted, never due in the future."""
        now = self._clock()
        return min(now, accepted_at - self._wall() + now)

    # --- lifecycle

    async def start(self) -> None:
        """Take in what the spool holds and start the dispatcher; returns at once."""
        if self._running:
            return
        self._running = True
        if not self._subscribed:
            self._subscribed = True
            self._spool.subscribe(self)
        await self._supervisor.start()
        self._supervisor.keep("dispatcher", self._dispatch)
        self._supervisor.keep("replays", self._replays)

    async def stop(self) -> None:
        """Cancel everything; batches in flight stay in the spool and are sent again on the next start."""
        self._running = False
        await self._supervisor.stop()

    @property
    def problems(self) -> dict[str, str]:
        """Why delivery cannot go on, by unit (empty when it can): spool calls, the sender, a task."""
        return dict(self._supervisor.problems)

    @property
    def supervisor(self) -> Supervisor:
        """The supervisor of delivery's tasks (for health and metrics)."""
        return self._supervisor

    @property
    def scheduler(self) -> Scheduler:
        """The scheduling core (read-only use: metrics, tests)."""
        return self._scheduler

    async def drain(self, deadline: float) -> None:
        """Send what is deliverable until ``deadline`` (monotonic); stop early once nothing deliverable is left."""
        self._draining = True
        self._force()
        while True:
            change = self._change
            if self._clock() >= deadline or not self._deliverable_left(deadline):
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - self._clock())):
                    await change.wait()

    def _deliverable_left(self, deadline: float) -> bool:
        if self._scheduler.in_flight:
            return True
        due = self._scheduler.next_due(self._clock())
        return due is not None and due < deadline

    def _force(self) -> None:
        self._scheduler.set_forced(self._draining or bool(self._flushes), self._clock())
        self._wake.set()

    # --- what the spool tells

    def recovered(self, backlogs: Mapping[ShardKey, Backlog], last_seq: int) -> None:
        """What the spool held when it opened (no seq above ``last_seq``): counted into the scheduler."""
        now = self._clock()
        self._seen_seq = max(self._seen_seq, last_seq)
        for key, backlog in backlogs.items():
            self._scheduler.add(
                key, backlog.events, backlog.bytes, (backlog.oldest_seq, backlog.oldest_accepted_at), now
            )
        self._wake.set()

    def appended(self, events: Sequence[SpooledEvent]) -> None:
        """Events joined the queue (in seq order): counted into the scheduler, one update per key."""
        if not events:
            return
        now = self._clock()
        self._seen_seq = max(self._seen_seq, events[-1].seq)
        for key, count, size, first in joined_by_key(events):
            self._scheduler.add(key, count, size, (first.seq, first.accepted_at), now)
        self._wake.set()

    # --- flush

    async def flush(self) -> FlushResult:
        """Wait until everything accepted so far is delivered, dead-lettered or waits on a parked key."""
        waiter = self._flushes.begin(self._seen_seq)
        if waiter is not None:
            self._force()
            try:
                await waiter.wait()
            finally:
                self._flushes.end(waiter)
                self._force()
        await self._sender.confirm()  # a gateway tier: its Flush too, so that delivered means delivered
        return self._flush_result()

    def _flush_result(self) -> FlushResult:
        parked = [key for key, _ in self._scheduler.parked() if self._scheduler.waiting_events(key)]
        count = sum(self._scheduler.waiting_events(key) for key in parked)
        hashes = tuple(sorted(write_key_hash(key[0]) for key in parked))
        return FlushResult(*self._flushes.since_last(self.delivered, self.dead_lettered_total), count, hashes)

    def _request_done(self, key: ShardKey, left: Sequence[SpooledEvent]) -> None:
        """A request of ``key`` settled: tell the waiting flushes, anyone draining, and the dispatcher, since the
        settle may have made the key ready with no timer to wake it (a key that failed waits for its last request in
        flight, and that one may be a batch sent on its own, not the request that read it)."""
        self._flushes.request_done(key, left)
        self._changed()
        self._wake.set()

    def _changed(self) -> None:
        change, self._change = self._change, asyncio.Event()
        change.set()

    # --- the dispatcher

    async def _dispatch(self) -> None:
        self._supervisor.report("dispatcher", None)
        while True:
            self._wake.clear()  # before asking: a notification from here on wakes the wait below
            now = self._clock()
            saturated = self._ahead >= AHEAD_OF_THE_LIMITER
            take = None if saturated else self._scheduler.next_take(now)
            if take is None:
                # Saturated: the next grant (or the end of a request) wakes us; else the scheduler's next timer.
                due = None if saturated else self._scheduler.next_due(now)
                timeout = None if due is None else max(0.0, due - self._clock())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                continue
            if self._limiter is not None:
                self._ahead += take.batches
            self._supervisor.spawn("request", functools.partial(self._request, take))

    async def _replays(self) -> None:
        self._supervisor.report("replays", None)
        while True:
            replays = await self._spool.take_replays()
            if replays:
                log.info("dead_letters_replayed", events=replays)
            await asyncio.sleep(REPLAY_CHECK_SECONDS)

    def _not_ahead(self, requests: int) -> None:
        """Requests counted ahead of the limiter that are not (or not any more) being read or waiting for a grant."""
        if self._limiter is not None and requests:
            self._ahead -= requests
            self._wake.set()

    # --- one request

    async def _request(self, take: Take) -> None:
        """Read a take's events, then send, apply and settle each of its batches (the first here, the others in units
        of their own); a failure puts the key on a backoff, its events staying in the spool."""
        try:
            try:
                events = await self._spool.read(take.key, take.after_seq, take.max_bytes, take.max_events)
            except Exception as exc:  # noqa: BLE001 - any failure: logged, reported, the key retried later
                self._failed("spool_read", take.key, exc)
                self._scheduler.abandon(take, self._clock())
                self._not_ahead(take.batches)
                return
            self._supervisor.report("spool_read", None)
            batches = self._scheduler.read_done(take, events, self._clock())
            self._not_ahead(take.batches - len(batches))
            for batch in batches[1:]:
                self._supervisor.spawn("request", functools.partial(self._deliver, take, batch))
            if batches:
                await self._deliver(take, batches[0])
        finally:
            self._wake.set()
            self._changed()

    async def _deliver(self, take: Take, batch: Batch) -> None:
        """Send one batch (or dead-letter it), apply the decision to the spool, settle it in the scheduler. Each step
        that can fail has its unit: ``send`` (the sender raised), ``spool_write`` (remove or dead-letter raised);
        either way the key retries the batch after a backoff, its events still in the spool."""
        self._not_ahead(1)  # read: from here it counts again only while it waits for its grant
        outcome: Outcome | None = None
        sent = batch
        unit = "spool_write"
        gone = _Gone()
        try:
            if take.kind is TakeKind.DEAD_LETTER:
                decision: Decision = GiveUp(DeadLetterReason.PARKED_TOO_LONG, "")
            elif take.kind is TakeKind.TOO_LARGE:
                decision = GiveUp(DeadLetterReason.TOO_LARGE, "")
            else:
                sent = await self._drop_expired(batch, gone)
                if not sent.events:
                    decision = Remove()  # every event was dead-lettered as expired
                else:
                    unit = "send"
                    started = self._clock()
                    outcome = await self._attempt(sent)
                    self._supervisor.report("send", None)
                    for observer in self._observers:
                        observer.attempt_finished(sent, outcome, self._clock() - started)
                    decision = decide(sent, outcome, self._clock(), self._rules)
                    unit = "spool_write"
            await self._note_key(
                sent.shard, outcome
            )  # first: a watcher that sees an event's record sees its key's state
            gone.gateway = (outcome.gateway or "") if isinstance(outcome, Delivered | PartlyRejected) else ""
            await self._apply(sent, decision, gone, 0 if outcome is None else outcome.status)
        except Exception as exc:  # noqa: BLE001 - any failure: logged, reported, the key retried later
            self._failed(unit, batch.shard, exc)
            self._scheduler.failed(batch, self._clock(), gone.events, gone.oldest)
            self._request_done(batch.shard, gone.events)
            return
        self._supervisor.report("spool_write", None)
        was_parked = self._scheduler.is_parked(batch.shard)
        self._scheduler.settle(batch, decision, self._clock(), gone.events, gone.oldest)
        refused_since = self.keys.refused_since(batch.shard)
        if not was_parked and refused_since is not None:  # the park counts from Segment's first refusal, as stored
            self._scheduler.park_since(batch.shard, self._clock_of(refused_since))
        self._request_done(batch.shard, gone.events)
        log_decision(
            sent, decision, outcome, was_parked, self._scheduler.is_parked(batch.shard), self._clock, self._policy
        )

    async def _attempt(self, batch: Batch) -> Outcome:
        """Admission, in this order: credentials (may wait; holds no grant), the rate grant, then the request."""
        authorization = await self._sender.authorize(batch)
        if not isinstance(authorization, Authorization):
            return authorization  # no attempt can be made now: no grant is used
        if self._limiter is not None:
            self._ahead += 1
            started = self._clock()
            try:
                await self._limiter.acquire()
            finally:
                self._not_ahead(1)
            waited = self._clock() - started
            for observer in self._observers:
                observer.rate_limited(waited)
        self.requests += 1
        return await self._sender.send(batch, authorization)

    def _failed(self, unit: str, key: ShardKey, exc: BaseException) -> None:
        """Log (``<unit>_failed``) and report a failure: the first of a streak with its traceback, repeats while it
        lasts as one line each."""
        hashed = write_key_hash(key[0])
        event = f"{unit}_failed"
        if unit in self._supervisor.problems:
            log.warning(event, write_key_hash=hashed, region=key[1].value, error=repr(exc)[:300])
        else:
            log.error(event, write_key_hash=hashed, region=key[1].value, error=type(exc).__name__, exc_info=exc)
        self._supervisor.report(unit, type(exc).__name__)

    async def _drop_expired(self, batch: Batch, gone: _Gone) -> Batch:
        """Dead-letter events older than max_event_age (from acceptance, a wall time); the batch of the others."""
        oldest_allowed = self._wall() - self._policy.max_event_age
        if not batch.events or batch.events[0].accepted_at >= oldest_allowed:
            return batch
        expired = [e for e in batch.events if e.accepted_at < oldest_allowed]
        await self._dead_letter(batch.shard, expired, DeadLetterReason.EXPIRED, "", gone)
        kept = [e for e in batch.events if e.accepted_at >= oldest_allowed]
        return Batch(batch.shard, kept, sum(len(e.payload) + 1 for e in kept), batch.attempts, batch.auth_renewals)

    async def _apply(self, batch: Batch, decision: Decision, gone: _Gone, status: int) -> None:
        """The decision's spool work: remove delivered events, dead-letter given-up ones (Segment's ``status``)."""
        gone.status = status
        if isinstance(decision, Remove):
            await self._remove(batch.shard, batch.events, gone)
        elif isinstance(decision, RemoveExcept):
            rejected = dict(decision.rejected)
            await self._remove(batch.shard, [e for i, e in enumerate(batch.events) if i not in rejected], gone)
            for index, reason in decision.rejected:
                await self._dead_letter(
                    batch.shard, [batch.events[index]], DeadLetterReason.REJECTED_EVENT, reason, gone
                )
        elif isinstance(decision, GiveUp):
            await self._dead_letter(batch.shard, batch.events, decision.reason, decision.detail, gone)

    async def _note_key(self, key: ShardKey, outcome: Outcome | None) -> None:
        """Store the key's change of state, if Segment's answer changed it (kept in memory once stored)."""
        change = self.keys.change(key, outcome, self._wall())
        if change is not None:
            await self._spool.record_key(change.record, change.outcome)
            self.keys.apply(change)

    async def _remove(self, key: ShardKey, events: list[SpooledEvent], gone: _Gone) -> None:
        if not events:
            return
        oldest = await self._spool.remove(events, gone.status or 200, gone.gateway)
        gone.note(events, oldest, key)
        self.delivered += len(events)

    async def _dead_letter(
        self, key: ShardKey, events: list[SpooledEvent], reason: DeadLetterReason, response: str, gone: _Gone
    ) -> None:
        if not events:
            return
        oldest = await self._spool.dead_letter(events, reason.description, response, reason.value, gone.status)
        gone.note(events, oldest, key)
        self.dead_lettered_total += len(events)
        for observer in self._observers:
            observer.dead_lettered(events, reason)
        log.error(
            "events_dead_lettered",
            write_key_hash=write_key_hash(key[0]),
            region=key[1].value,
            events=len(events),
            reason=reason.value,
            response=response[:300],
        )
