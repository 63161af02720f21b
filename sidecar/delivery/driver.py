"""The thin async shell around the scheduler core: spool notifications in, requests out, outcomes settled.

The policy lives in pure code: :mod:`sidecar.delivery.scheduler` says which key sends next and when,
:func:`sidecar.delivery.decide.decide` says what an outcome means. This shell only does the I/O, under a
:class:`~sidecar.tasks.Supervisor`:

* the spool's backlog notifications (``Spool.subscribe``) update the scheduler synchronously;
* the *dispatcher* asks the scheduler for the next take, or sleeps until its next timer or a notification;
* one *request* task per take reads the key's next events from the spool (``Spool.read``: by key, so parked or
  busy keys hold nothing in memory), sends them through the sender chain, applies the decision to the spool (remove,
  dead-letter) and settles it in the scheduler. A failing spool call or sender is logged once with its traceback, the
  key retries after a backoff (its events are still in the spool), and the driver reports why delivery cannot go on
  (health NOT_SERVING) until the same call succeeds again;
* the *replays* loop re-queues dead letters marked for replay.

Flush waits until every event accepted before it (seq <= ``last_seq`` at the call) has left the spool, except events
of parked keys, which it reports.

What the shell is given and gives (the spool, pacing, observers, its policy, a flush's result) is in
:mod:`sidecar.delivery.interfaces`; what it logs about each settled batch, in :mod:`sidecar.delivery.decision_log`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar

import structlog

from sidecar.delivery.decide import (
    DeadLetter,
    Decision,
    DecisionRules,
    Remove,
    RemoveExcept,
    decide,
)
from sidecar.delivery.decision_log import log_decision
from sidecar.delivery.interfaces import DeliveryObserver, DeliveryPolicy, DeliverySpool, FlushResult, Paced
from sidecar.delivery.scheduler import BacklogView, Scheduler, SchedulerPolicy, Take, TakeKind
from sidecar.model import Batch, DeadLetterReason, ShardKey, SpooledEvent, write_key_hash
from sidecar.send.backoff import Backoff
from sidecar.send.chain import Sender
from sidecar.send.classify import Outcome
from sidecar.tasks import Supervisor

__all__ = ["DeliveryDriver", "DeliveryObserver", "DeliveryPolicy", "DeliverySpool", "FlushResult", "Paced"]

log = structlog.get_logger("sidecar.delivery")

_grant: ContextVar[list[bool] | None] = ContextVar("sidecar_delivery_grant", default=None)
"""In a request's task: whether its attempt got its rate-limiter grant yet."""

REPLAY_CHECK_SECONDS = 2.0
"""How often the spool is asked for dead letters marked for replay by `segment-sidecar dead-letters replay`."""
FAILURE_BACKOFF = Backoff(0.5, 30.0)
"""Delay before a key whose spool call or sender raised is tried again."""
AHEAD_OF_THE_LIMITER = 3
"""Requests taken (read, or waiting for their rate-limiter grant) beyond those already granted, with a paced sender.
A batch is chosen as late as possible: a request waiting at the limiter cannot fill up any more, and a key that
becomes ready waits behind every request already taken. A few cover the spool read while the limiter waits."""
FLUSH_RECHECK_SECONDS = 0.02
"""Least time between two checks of a waiting flush (each walks the keys with a backlog)."""


class DeliveryDriver:
    """Moves events from the spool to the sender chain; see the module docstring."""

    def __init__(
        self,
        spool: DeliverySpool,
        sender: Sender,
        policy: DeliveryPolicy,
        overhead: Callable[[str], int],
        observers: Sequence[DeliveryObserver] = (),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_health_change: Callable[[], None] | None = None,
        paced: Paced | None = None,
    ) -> None:
        self._spool = spool
        self._sender = sender
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
            ),
            overhead,
        )
        self._rules = DecisionRules(policy.backoff, policy.parked_retry_interval)
        self._supervisor = Supervisor("delivery", on_health_change)
        self._wake = asyncio.Event()  # the dispatcher's: something may be ready
        self._change = asyncio.Event()  # replaced at each change: waiters take it before checking their condition
        self._subscribed = False
        self._running = False
        self._flushes = 0
        self._draining = False
        self._failures: dict[ShardKey, int] = {}
        self._ahead = 0  # requests taken and not yet granted by the limiter
        self._paced = paced is not None and paced.paced
        if paced is not None and self._paced:
            paced.on_grant(self._granted)
        self.delivered = 0
        self.dead_lettered_total = 0
        self.requests = 0

    # --- lifecycle

    async def start(self) -> None:
        """Mirror the spool's backlogs into the scheduler and start the dispatcher; returns at once."""
        if self._running:
            return
        self._running = True
        if not self._subscribed:
            self._spool.subscribe(self._on_backlog)
            self._subscribed = True
        now = self._wall()
        for key, backlog in self._spool.backlogs().items():
            self._scheduler.update(key, backlog, now)
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
                async with asyncio.timeout(min(0.5, max(0.0, deadline - self._clock()))):
                    await change.wait()

    def _deliverable_left(self, deadline: float) -> bool:
        if self._scheduler.in_flight:
            return True
        due = self._scheduler.next_due(self._wall())
        return due is not None and due < self._wall() + (deadline - self._clock())

    def _force(self) -> None:
        self._scheduler.set_forced(self._draining or self._flushes > 0, self._wall())
        self._wake.set()

    # --- flush

    async def flush(self) -> FlushResult:
        """Wait until everything accepted so far is delivered, dead-lettered or waits on a parked key."""
        target = self._spool.last_seq
        self._flushes += 1
        self._force()
        try:
            while True:
                change = self._change
                if self._flushed(target):
                    return self._flush_result()
                await change.wait()
                await asyncio.sleep(FLUSH_RECHECK_SECONDS)  # a burst of changes costs one check
        finally:
            self._flushes -= 1
            self._force()

    def _flushed(self, target: int) -> bool:
        for key, backlog in self._spool.backlogs().items():
            if backlog.oldest_seq <= target and not self._scheduler.is_parked(key):
                return False
        return True

    def _flush_result(self) -> FlushResult:
        backlogs = self._spool.backlogs()
        parked = [key for key, _ in self._scheduler.parked() if key in backlogs]
        count = sum(backlogs[key].events for key in parked)
        hashes = tuple(sorted(write_key_hash(key[0]) for key in parked))
        return FlushResult(self.delivered, self.dead_lettered_total, count, hashes)

    # --- the spool's notifications

    def _on_backlog(self, key: ShardKey, backlog: BacklogView | None) -> None:
        if not self._running:
            return
        self._scheduler.update(key, backlog, self._wall())
        self._wake.set()
        if self._flushes:
            self._changed()

    # --- the dispatcher

    async def _dispatch(self) -> None:
        self._supervisor.report("dispatcher", None)
        while True:
            self._wake.clear()  # before asking: a notification from here on wakes the wait below
            now = self._wall()
            saturated = self._ahead >= AHEAD_OF_THE_LIMITER
            take = None if saturated else self._scheduler.next_take(now)
            if take is None:
                # Saturated: the next grant (or the end of a request) wakes us; else the scheduler's next timer.
                due = None if saturated else self._scheduler.next_due(now)
                timeout = None if due is None else max(0.0, due - self._wall())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                continue
            if self._paced:
                self._ahead += take.batches
            self._supervisor.spawn("request", functools.partial(self._request, take))

    async def _replays(self) -> None:
        self._supervisor.report("replays", None)
        while True:
            replays = await self._spool.take_replays()
            if replays:
                log.info("dead_letters_replayed", events=replays)
            await asyncio.sleep(REPLAY_CHECK_SECONDS)

    # --- one request

    def _retry_delay(self, key: ShardKey) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return FAILURE_BACKOFF.delay(failures)

    def _changed(self) -> None:
        change, self._change = self._change, asyncio.Event()
        change.set()

    def _done(self) -> None:
        self._wake.set()
        self._changed()

    def _granted(self) -> None:
        """The limiter granted the attempt of the request running in this context."""
        grant = _grant.get()
        if grant is not None and not grant[0]:
            grant[0] = True
            self._ahead -= 1
            self._wake.set()

    def _not_granted(self, requests: int) -> None:
        """Requests counted ahead of the limiter that will never reach it."""
        if self._paced and requests:
            self._ahead -= requests
            self._wake.set()

    async def _request(self, take: Take) -> None:
        """Read a take's events, then send, apply and settle each of its batches (the first here, the others in units
        of their own); a failure puts the key on a backoff, its events staying in the spool."""
        try:
            try:
                events = await self._spool.read(take.key, take.after_seq, take.max_bytes, take.max_events)
            except Exception as exc:  # noqa: BLE001 - any failure: logged, reported, the key retried later
                self._failed("spool_read", take.key, exc)
                now = self._wall()
                self._scheduler.abandon(take, now + self._retry_delay(take.key), now)
                self._not_granted(take.batches)
                return
            self._supervisor.report("spool_read", None)
            batches = self._scheduler.read_done(take, events, self._wall())
            self._not_granted(take.batches - len(batches))
            self._wake.set()
            for batch in batches[1:]:
                self._supervisor.spawn("request", functools.partial(self._deliver_one, take, batch))
            if batches:
                await self._deliver_one(take, batches[0])
        finally:
            self._done()

    async def _deliver_one(self, take: Take, batch: Batch) -> None:
        grant = [False]
        _grant.set(grant)  # this task's context: the limiter's grant callback finds it there
        try:
            await self._deliver(take, batch)
        finally:
            if not grant[0]:
                grant[0] = True
                self._not_granted(1)  # never reached the limiter (all expired, a dead-letter pass, a failure)
            self._done()

    async def _deliver(self, take: Take, batch: Batch) -> None:
        """Send one batch (or dead-letter it), apply the decision to the spool, settle it in the scheduler. Each step
        that can fail has its unit: ``send`` (the sender raised), ``spool_write`` (remove or dead-letter raised);
        either way the key retries the batch after a backoff, its events still in the spool."""
        outcome: Outcome | None = None
        sent = batch
        unit = "spool_write"
        try:
            if take.kind is TakeKind.DEAD_LETTER:
                decision: Decision = DeadLetter(DeadLetterReason.PARKED_TOO_LONG, "")
            else:
                sent = await self._drop_expired(batch)
                if not sent.events:
                    decision = Remove()  # every event was dead-lettered as expired
                else:
                    unit = "send"
                    started = self._clock()
                    self.requests += 1
                    outcome = await self._sender.send(sent)
                    self._supervisor.report("send", None)
                    for observer in self._observers:
                        observer.batch_settled(sent, outcome, self._clock() - started)
                    decision = decide(sent, outcome, self._wall(), self._rules)
                    unit = "spool_write"
            await self._apply(sent, decision)
        except Exception as exc:  # noqa: BLE001 - any failure: logged, reported, the key retried later
            self._failed(unit, batch.shard, exc)
            now = self._wall()
            self._scheduler.retry_later(batch, now + self._retry_delay(batch.shard), now)
            return
        self._supervisor.report("spool_write", None)
        self._failures.pop(batch.shard, None)
        was_parked = self._scheduler.is_parked(batch.shard)
        self._scheduler.settle(batch, decision, self._wall())
        log_decision(
            sent, decision, outcome, was_parked, self._scheduler.is_parked(batch.shard), self._wall, self._policy
        )

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

    async def _drop_expired(self, batch: Batch) -> Batch:
        """Dead-letter events older than max_event_age (from acceptance); the batch of the others."""
        oldest_allowed = self._wall() - self._policy.max_event_age
        if not batch.events or batch.events[0].accepted_at >= oldest_allowed:
            return batch
        expired = [e for e in batch.events if e.accepted_at < oldest_allowed]
        await self._dead_letter(batch.shard, expired, DeadLetterReason.EXPIRED, "")
        kept = [e for e in batch.events if e.accepted_at >= oldest_allowed]
        return Batch(batch.shard, kept, sum(len(e.payload) + 1 for e in kept), batch.attempts, batch.auth_renewals)

    async def _apply(self, batch: Batch, decision: Decision) -> None:
        """The decision's spool work: remove delivered events, dead-letter given-up ones."""
        if isinstance(decision, Remove):
            await self._remove(batch.events)
        elif isinstance(decision, RemoveExcept):
            rejected = dict(decision.rejected)
            await self._remove([e for i, e in enumerate(batch.events) if i not in rejected])
            for index, reason in decision.rejected:
                await self._dead_letter(batch.shard, [batch.events[index]], DeadLetterReason.REJECTED_EVENT, reason)
        elif isinstance(decision, DeadLetter):
            await self._dead_letter(batch.shard, batch.events, decision.reason, decision.detail)

    async def _remove(self, events: list[SpooledEvent]) -> None:
        # Counted before the spool call: the spool tells a waiting Flush that the events left (its backlog
        # notification) before this coroutine resumes, and the Flush's answer must include them.
        if not events:
            return
        self.delivered += len(events)
        try:
            await self._spool.remove(events)
        except BaseException:
            self.delivered -= len(events)
            raise

    async def _dead_letter(
        self, key: ShardKey, events: list[SpooledEvent], reason: DeadLetterReason, response: str
    ) -> None:
        if not events:
            return
        self.dead_lettered_total += len(events)  # before the call, as in _remove
        try:
            await self._spool.dead_letter(events, reason.description, response)
        except BaseException:
            self.dead_lettered_total -= len(events)
            raise
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
