"""The delivery scheduler's pure core: which (write key, region) sends next, and when; no event loop, no I/O.

This is the one owner of per-key delivery state. Per key: what waits (events, bytes, the oldest seq and its
acceptance time: counted up by :meth:`Scheduler.add` when the spool reports appended, recovered or replayed events,
and down by :meth:`Scheduler.settle` when a request's events left the spool), requests in flight and the read cursor
(the highest seq in flight), the attempt count, a backoff or park timer, and a smaller batch size after a split. It
never holds events: the shell reads a key's next events from the spool when the key's turn comes, and a failed
batch's events are simply read again later (they are still the key's oldest).

A key is *ready* when its unsent events fill a batch (bytes or events), or its oldest unsent event has waited
``flush_interval``, or a flush or drain forces it; and it is not paused (backoff, park) nor waiting for a read,
nor *drained* (its last read past the cursor found nothing while requests were in flight: it waits for one of them
to settle). Ready keys are served in rounds, one request per key per round, oldest-waiting-event first within a
round: a key that just sent joins the next round (and keeps that place if its backlog empties and refills
meanwhile). So no key's oldest event waits more than one round: (keys ready / paced rate) + flush interval.
A key with several batches waiting may have several requests in flight (its cursor moves past each), so one key
alone can use the whole rate; after a failure it sends one request at a time, from its oldest event, until one works.

Parked keys (401/403) are timers only: a probe at the end of each park period (one batch, read from the spool), and
once parked for ``parked_dead_letter_after`` their events are read and dead-lettered (:attr:`TakeKind.DEAD_LETTER`).

Times are the shell's monotonic clock, so that a step of the wall clock moves no backoff and no park; an event's
acceptance time (Unix seconds, as written to the spool) is mapped onto it by ``clock_of``. Everything is
deterministic given (state, now) and, for a failure's backoff, the random source. The shell calls, in this order:
:meth:`Scheduler.next_take` -> (read the spool) -> :meth:`Scheduler.read_done` -> (send each batch) ->
:meth:`Scheduler.settle` for each.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator, Sequence

from sidecar.delivery.decide import Decision, GiveUp, ParkUntil, Remove, RemoveExcept, RetryAt, SplitBatch
from sidecar.delivery.fit import fit
from sidecar.delivery.keys import (
    MAX_BATCHES_PER_READ,
    KeyState,
    Oldest,
    SchedulerPolicy,
    Take,
    TakeKind,
    same_clock,
)
from sidecar.model import Batch, DeadLetterReason, ShardKey, SpooledEvent

__all__ = ["MAX_BATCHES_PER_READ", "Oldest", "Scheduler", "SchedulerPolicy", "Take", "TakeKind", "fit"]


class Scheduler:
    """The pure scheduling core; see the module docstring."""

    def __init__(
        self,
        policy: SchedulerPolicy,
        overhead: Callable[[str], int],
        clock_of: Callable[[float], float] = same_clock,
        rng: random.Random | None = None,
    ) -> None:
        self._policy = policy
        self._overhead = overhead
        self._clock_of = clock_of
        self._rng = rng
        self._keys: dict[ShardKey, KeyState] = {}
        self._ready: list[tuple[float, float, int, int, ShardKey]] = []  # (round, oldest unsent at, tie, version, key)
        self._timers: list[tuple[float, float, int, int, ShardKey]] = []  # (due, 0, tie, version, key)
        self._round = 0
        self._served: dict[ShardKey, int] = {}  # forgotten keys already served this round -> their next turn
        self._tie = 0
        self._forced = False
        self.in_flight = 0

    # --- inputs

    def add(self, key: ShardKey, events: int, size: int, first: Oldest, now: float) -> None:
        """The spool holds ``events`` more of ``key`` (appended, recovered or replayed), ``size`` payload bytes, the
        first of them ``first``. Seqs only grow, so ``first`` is the key's oldest only when nothing else waited."""
        if events <= 0:
            return
        state = self._keys.get(key)
        if state is None:
            state = KeyState(key, self._overhead(key[0]))
            state.turn = self._served.pop(key, 0)  # a key that emptied and came back keeps its place in the rounds
            self._keys[key] = state
        if state.waiting_events <= 0:
            state.oldest_seq = first[0]
            state.oldest_at = self._clock_of(first[1])
        state.waiting_events += events
        state.waiting_bytes += size
        state.drained = False
        self._evaluate(state, now)

    def waiting(self) -> Iterator[tuple[ShardKey, int]]:
        """Every key with events waiting, with how many (in flight included)."""
        for key, state in self._keys.items():
            if state.waiting_events > 0:
                yield key, state.waiting_events

    def state_of(self, key: ShardKey) -> KeyState | None:
        """A key's state (read-only use: status queries), or None when it has none."""
        return self._keys.get(key)

    def waiting_events(self, key: ShardKey) -> int:
        """Events of ``key`` waiting in the spool, in flight included."""
        state = self._keys.get(key)
        return state.waiting_events if state is not None else 0

    def set_forced(self, forced: bool, now: float) -> None:
        """While forced (a Flush or a drain), partial batches are ready without waiting for the flush interval."""
        if forced == self._forced:
            return
        self._forced = forced
        for state in self._keys.values():
            self._evaluate(state, now)

    def next_take(self, now: float) -> Take | None:
        """The next request to make now, or None (nothing ready, or ``max_in_flight`` reached)."""
        self._fire_timers(now)
        if self.in_flight >= self._policy.max_in_flight:
            return None
        while self._ready:
            turn, _, _, version, key = heapq.heappop(self._ready)
            state = self._keys.get(key)
            if state is None or state.version != version:
                continue
            state.placed = None
            if int(turn) > self._round:
                self._round = int(turn)
                self._served = {k: t for k, t in self._served.items() if t > self._round}
            if not self._is_ready(state, now):
                self._evaluate(state, now)
                continue
            return self._take(state, now)
        return None

    def read_done(self, take: Take, events: Sequence[SpooledEvent], now: float) -> list[Batch]:
        """The spool answered ``take`` with ``events`` (in seq order): the batches to send (up to ``take.batches``,
        each cut to the body limit; events past them are read again later), none if nothing came."""
        state = self._keys[take.key]
        state.reading = False
        batches: list[Batch] = []
        rest = list(events)
        while rest and len(batches) < take.batches:
            if take.kind is TakeKind.SEND:
                cut = fit(rest[: take.max_events // take.batches], state.overhead, self._policy.batch_max_bytes)
            else:
                cut = rest
            rest = rest[len(cut) :]
            size = sum(len(e.payload) for e in cut)
            batches.append(Batch(take.key, cut, size + len(cut), state.attempts, state.auth_renewals))
            state.in_flight_events += len(cut)
            state.in_flight_bytes += size
            state.cursor = max(state.cursor, cut[-1].seq)
            state.last_read_accepted_at = self._clock_of(cut[-1].accepted_at)
        unused = take.batches - len(batches)
        if not events and state.in_flight > unused:
            # Its unsent events are behind the cursor (a batch that failed among several in flight): none can be
            # read until a request in flight settles and the cursor starts over, so wait for that, not a timer.
            state.drained = True
        if unused:
            self._release(state, now, unused)  # evaluates the key
        else:
            self._evaluate(state, now)
        return batches

    def settle(
        self,
        batch: Batch,
        decision: Decision,
        now: float,
        left: Sequence[SpooledEvent] = (),
        oldest: Oldest | None = None,
    ) -> None:
        """The request of ``batch`` ended with ``decision``; its spool work is done: ``left`` are the events that left
        the spool (delivered, dead-lettered, expired), ``oldest`` the key's oldest event the spool still held after
        that (None: not asked, or nothing left)."""
        state = self._keys.get(batch.shard)
        if state is None:  # pragma: no cover - a key is kept while it has requests in flight
            return
        state.in_flight_events -= len(batch.events)
        state.in_flight_bytes -= sum(len(e.payload) for e in batch.events)
        state.drained = False
        self._left(state, left, oldest)
        if isinstance(decision, GiveUp) and decision.reason is DeadLetterReason.PARKED_TOO_LONG:
            # A parked key's dead-letter pass goes on while older events remain; events accepted after the park
            # period ran out start a new period (the key is still probed, so a fixed key gets through).
            if state.parked_since is not None and batch.events:
                expiry = state.parked_since + self._policy.parked_dead_letter_after
                if self._clock_of(batch.events[-1].accepted_at) >= expiry:
                    state.parked_since = now
        elif isinstance(decision, Remove | RemoveExcept | GiveUp):
            if (
                not state.failing
                or (batch.events and batch.events[0].seq <= state.retry_from_seq)
                or state.waiting_events <= 0
                or state.oldest_seq > state.retry_from_seq
            ):
                # A success of a batch read before a failure (several in flight) does not end the failing: only
                # the re-read of the failed batch does (or the failed events are gone).
                state.failing = False
                state.attempts = 0
                state.auth_renewals = 0
            if state.parked_since is not None:
                state.parked_since = None  # the probe got through: the key was fixed
                state.paused_until = 0.0
            if state.splits and batch.events and batch.events[0].seq <= state.split_until_seq:
                # One part of a refused batch is done (sent, or its one bad event dead-lettered): the next part goes;
                # past the refused batch, the rest leaves in full batches.
                state.splits.pop()
                if not state.splits or batch.events[-1].seq >= state.split_until_seq:
                    state.splits.clear()
        elif batch.events:
            first = batch.events[0].seq
            state.retry_from_seq = min(state.retry_from_seq, first) if state.failing else first
            state.failing = True
        if isinstance(decision, RetryAt):
            state.attempts += 1
            if decision.renewed_credentials:
                state.auth_renewals += 1
            state.paused_until = max(state.paused_until, decision.at)
        elif isinstance(decision, SplitBatch) and batch.events:
            self._split(state, batch, decision)
        elif isinstance(decision, ParkUntil):
            state.attempts += 1
            if state.parked_since is None:
                state.parked_since = now
            state.paused_until = decision.at
        self._release(state, now)

    @staticmethod
    def _split(state: KeyState, batch: Batch, decision: SplitBatch) -> None:
        """A refused batch (or part of one) is sent again as its two halves, the first half first, each split again
        only if it is refused too: a key whose n events are all refused takes 2n - 1 requests, one bad event among n
        about 2 log2(n). A refused batch read before the split began (beyond its range) is simply read again later."""
        if state.splits:
            if batch.events[0].seq > state.split_until_seq:
                return
            state.splits.pop()
        count = len(batch.events)
        state.splits += [count - count // 2, count // 2]
        state.split_until_seq = max(state.split_until_seq, decision.last_seq)

    def failed(
        self, batch: Batch, now: float, left: Sequence[SpooledEvent] = (), oldest: Oldest | None = None
    ) -> float:
        """The request of ``batch`` failed outside the sender's outcomes (an exception): its key backs off like after a
        retryable outcome, then reads the batch again. Returns the delay."""
        delay = self._policy.backoff.delay(batch.attempts, None, self._rng)
        self.settle(batch, RetryAt(now + delay, "unexpected error"), now, left, oldest)
        return delay

    def abandon(self, take: Take, now: float) -> float:
        """The read for ``take`` failed: the key backs off, then reads again. Returns the delay."""
        state = self._keys.get(take.key)
        if state is None:  # pragma: no cover
            return 0.0
        delay = self._policy.backoff.delay(state.attempts, None, self._rng)
        state.attempts += 1
        state.reading = False
        state.drained = False
        state.failing = True
        state.paused_until = max(state.paused_until, now + delay)
        self._release(state, now, take.batches)
        return delay

    # --- outputs

    def next_due(self, now: float) -> float | None:
        """When the shell must call :meth:`next_take` again at the latest (``now`` if something is ready)."""
        self._fire_timers(now)
        if self._ready and self.in_flight < self._policy.max_in_flight:
            return now
        while self._timers:
            due, _, _, version, key = self._timers[0]
            state = self._keys.get(key)
            if state is not None and state.version == version:
                return due
            heapq.heappop(self._timers)
        return None

    def parked(self) -> Iterator[tuple[ShardKey, float]]:
        """Parked keys with the start of their park period."""
        for key, state in self._keys.items():
            if state.parked_since is not None:
                yield key, state.parked_since

    def parked_events(self) -> int:
        """Events waiting on parked keys."""
        return sum(state.waiting_events for state in self._keys.values() if state.parked_since is not None)

    def park_since(self, key: ShardKey, since: float) -> None:
        """Count a parked key's park period from ``since`` when that is earlier (a refusal stored by an earlier run),
        so that ``parked_too_long`` comes when it would have without the restart."""
        state = self._keys.get(key)
        if state is not None and state.parked_since is not None and since < state.parked_since:
            state.parked_since = since

    def is_parked(self, key: ShardKey) -> bool:
        """Whether ``key`` is parked (its events do not hold up a flush)."""
        state = self._keys.get(key)
        return state is not None and state.parked_since is not None

    @property
    def keys(self) -> int:
        """Keys with state (events waiting or requests in flight)."""
        return len(self._keys)

    # --- internals

    def _take(self, state: KeyState, now: float) -> Take:
        parked_out = (
            state.parked_since is not None and now - state.parked_since >= self._policy.parked_dead_letter_after
        )
        max_events = self._policy.batch_max_events
        if state.splits:
            max_events = min(max_events, state.splits[-1])
        payload_budget = self._policy.batch_max_bytes - state.overhead
        batches = 1
        kind = TakeKind.DEAD_LETTER if parked_out else TakeKind.SEND
        if payload_budget <= 0:
            kind, payload_budget = TakeKind.TOO_LARGE, self._policy.batch_max_bytes
        elif not (parked_out or state.failing or state.parked_since is not None or state.splits):
            full = max(state.unsent_bytes // payload_budget, state.unsent_events // max_events)
            room = self._policy.max_in_flight - self.in_flight
            batches = max(1, min(MAX_BATCHES_PER_READ, full, room))
        state.reading = True
        state.turn = max(state.turn, self._round) + 1  # back of the line: the others ready now go first
        if state.in_flight == 0:
            state.cursor = 0  # nothing in flight: read from the key's oldest event (a retry reads its batch again)
        state.in_flight += batches
        self.in_flight += batches
        state.version += 1  # out of line until the read is done
        state.placed = None
        return Take(state.key, kind, state.cursor, batches * payload_budget, batches * max_events, batches)

    def _release(self, state: KeyState, now: float, requests: int = 1) -> None:
        state.in_flight -= requests
        self.in_flight -= requests
        if state.in_flight == 0:
            state.cursor = 0
            state.in_flight_events = 0
            state.in_flight_bytes = 0
        if state.waiting_events <= 0 and state.in_flight == 0:
            self._forget(state)  # memory stays O(keys with events); a parked key with nothing left is forgotten
            return
        self._evaluate(state, now)

    def _left(self, state: KeyState, left: Sequence[SpooledEvent], oldest: Oldest | None) -> None:
        """Events left the spool. The counts are exact (every event was added before it could be read); the oldest
        only moves forward, so an answer of the spool that arrives after a newer one changes nothing."""
        if left:
            state.waiting_events -= len(left)
            state.waiting_bytes -= sum(len(e.payload) for e in left)
            if state.waiting_events <= 0:
                state.waiting_events = state.waiting_bytes = 0
        if oldest is not None and oldest[0] > state.oldest_seq and state.waiting_events > 0:
            state.oldest_seq = oldest[0]
            state.oldest_at = self._clock_of(oldest[1])

    def _forget(self, state: KeyState) -> None:
        del self._keys[state.key]
        if state.turn > self._round:
            self._served[state.key] = state.turn

    def _blocked(self, state: KeyState) -> bool:
        """Waiting for something other than time: a read, or the end of in-flight requests after a failure or after a
        read that found nothing."""
        if state.reading or state.unsent_events == 0 or (state.drained and state.in_flight > 0):
            return True
        return (state.failing or state.parked_since is not None) and state.in_flight > 0

    def _full(self, state: KeyState) -> bool:
        max_events = state.splits[-1] if state.splits else self._policy.batch_max_events
        events = state.unsent_events
        return (
            events >= max_events
            or state.overhead + state.unsent_bytes + max(0, events - 1) > self._policy.batch_max_bytes
        )

    def _due(self, state: KeyState) -> float:
        """When the key becomes ready by time alone (assuming it is not blocked)."""
        if state.parked_since is not None or state.failing:
            return state.paused_until
        if self._forced or self._full(state):
            return state.paused_until
        return max(state.paused_until, state.oldest_unsent_at + self._policy.flush_interval)

    def _is_ready(self, state: KeyState, now: float) -> bool:
        return not self._blocked(state) and self._due(state) <= now

    def _evaluate(self, state: KeyState, now: float) -> None:
        """Put the key in line (ready now) or on a timer (ready later); blocked keys wait for a settle or read.

        A key already placed where it belongs keeps its entry, so a busy key's appends do not pile up entries."""
        if self._blocked(state):
            if state.placed is not None:
                state.version += 1
                state.placed = None
            return
        due = self._due(state)
        ready = due <= now
        place = (True, float(max(state.turn, self._round)), state.oldest_unsent_at) if ready else (False, due, 0.0)
        if place == state.placed:
            return
        state.version += 1
        state.placed = place
        self._tie += 1
        heap = self._ready if place[0] else self._timers
        heapq.heappush(heap, (place[1], place[2], self._tie, state.version, state.key))

    def _fire_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, _, version, key = heapq.heappop(self._timers)
            state = self._keys.get(key)
            if state is not None and state.version == version:
                state.placed = None
                self._evaluate(state, now)
