"""The delivery scheduler's pure core: which (write key, region) sends next, and when; no event loop, no I/O.

State per key mirrors what the spool says the key has waiting (a :class:`BacklogView`: events, bytes, oldest seq and
acceptance time, pushed by the spool's notifications), plus what this core itself knows: requests in flight and the
read cursor (the highest seq in flight), a backoff or park timer, and a smaller batch size after a split. It never
holds events: the shell reads a key's next events from the spool when the key's turn comes, and a failed batch's
events are simply read again later (they are still the key's oldest).

A key is *ready* when its unsent events fill a batch (bytes or events), or its oldest unsent event has waited
``flush_interval``, or a flush or drain forces it; and it is not paused (backoff, park) nor waiting for a read. Ready
keys are served in rounds, one request per key per round, oldest-waiting-event first within a round: a key that just
sent joins the next round (and keeps that place if its backlog empties and refills meanwhile). So no key's oldest event
waits more than one round: (keys ready / paced rate) + flush interval.
A key with several batches waiting may have several requests in flight (its cursor moves past each), so one key
alone can use the whole rate; after a failure it sends one request at a time, from its oldest event, until one works.

Parked keys (401/403) are timers only: a probe at the end of each park period (one batch, read from the spool), and
once parked for ``parked_dead_letter_after`` their events are read and dead-lettered (:attr:`TakeKind.DEAD_LETTER`).

Times are the shell's clock (Unix seconds, the clock of ``accepted_at``). Everything is deterministic given (state,
now). The shell calls, in this order: :meth:`Scheduler.next_take` -> (read the spool) -> :meth:`Scheduler.read_done`
-> (send each batch) -> :meth:`Scheduler.settle` for each.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from sidecar.delivery.decide import DeadLetter, Decision, ParkUntil, Remove, RemoveExcept, RetryAt, SplitBatch
from sidecar.delivery.fit import fit
from sidecar.model import Batch, DeadLetterReason, ShardKey, SpooledEvent


class BacklogView(Protocol):
    """What one key has waiting in the spool (the spool's ``Backlog``)."""

    @property
    def events(self) -> int:
        """Undelivered, not dead-lettered events of the key, in flight included."""

    @property
    def bytes(self) -> int:
        """Their payload bytes."""

    @property
    def oldest_seq(self) -> int:
        """Seq of the oldest of them."""

    @property
    def oldest_accepted_at(self) -> float:
        """Its acceptance time (Unix seconds)."""


@dataclass(frozen=True, slots=True)
class SchedulerPolicy:
    """The size and timing rules the scheduler follows (from Settings)."""

    flush_interval: float
    batch_max_bytes: int
    """Bound on one request body: envelope, payloads and the commas between them."""
    batch_max_events: int
    max_in_flight: int
    """Bound on requests in flight (reads included) over all keys."""
    parked_dead_letter_after: float


class TakeKind(enum.Enum):
    """What the shell does with the events it reads for a take."""

    SEND = "send"
    DEAD_LETTER = "dead_letter"
    """The key has been parked for longer than ``parked_dead_letter_after``: dead-letter what is read."""


@dataclass(frozen=True, slots=True)
class Take:
    """One request's worth of a key to read from the spool: ``spool.read(key, after_seq, max_bytes, max_events)``."""

    key: ShardKey
    kind: TakeKind
    after_seq: int
    max_bytes: int
    """Payload bytes; :func:`fit` trims what is read to the body limit."""
    max_events: int
    batches: int = 1
    """Requests this read is for: a key with several full batches waiting reads up to ``MAX_BATCHES_PER_READ`` of them
    at once, so that its reads (one at a time per key, the cursor being the last seq read) keep up with the rate."""


MAX_BATCHES_PER_READ = 4
"""Full batches one read may take for one key (each still goes out as its own request)."""


class _Key:
    """Per-key state; see the module docstring."""

    __slots__ = (
        "attempts",
        "auth_renewals",
        "backlog",
        "cursor",
        "failing",
        "in_flight",
        "in_flight_bytes",
        "in_flight_events",
        "key",
        "last_read_accepted_at",
        "overhead",
        "parked_since",
        "paused_until",
        "placed",
        "reading",
        "retry_from_seq",
        "split_events",
        "split_until_seq",
        "turn",
        "version",
    )

    def __init__(self, key: ShardKey, overhead: int) -> None:
        self.key = key
        self.overhead = overhead
        self.backlog: BacklogView | None = None
        self.in_flight = 0  # requests (and dead-letter passes) taken and not settled
        self.in_flight_events = 0
        self.in_flight_bytes = 0
        self.cursor = 0  # highest seq in flight; 0 when nothing is
        self.last_read_accepted_at = 0.0
        self.reading = False
        self.paused_until = 0.0
        self.failing = False  # an attempt failed: one request at a time, from the oldest event, until one succeeds
        self.retry_from_seq = 0  # first seq of the earliest failed batch: a success from there ends the failing
        self.parked_since: float | None = None
        self.attempts = 0
        self.auth_renewals = 0
        self.split_events = 0  # 0: no split in force
        self.split_until_seq = 0
        self.turn = 0  # the round in which the key may send next (one request per key per round)
        self.version = 0  # bumped whenever the key leaves its place in line or on a timer (older entries are stale)
        self.placed: tuple[bool, float, float] | None = None  # (ready, round or due, oldest) of the valid entry

    @property
    def unsent_events(self) -> int:
        waiting = self.backlog.events if self.backlog is not None else 0
        return max(0, waiting - self.in_flight_events)

    @property
    def unsent_bytes(self) -> int:
        waiting = self.backlog.bytes if self.backlog is not None else 0
        return max(0, waiting - self.in_flight_bytes)

    @property
    def oldest_unsent_at(self) -> float:
        """Acceptance time of the oldest unsent event; a lower bound while requests are in flight."""
        if self.in_flight_events == 0 and self.backlog is not None:
            return self.backlog.oldest_accepted_at
        return self.last_read_accepted_at


class Scheduler:
    """The pure scheduling core; see the module docstring."""

    def __init__(self, policy: SchedulerPolicy, overhead: Callable[[str], int]) -> None:
        self._policy = policy
        self._overhead = overhead
        self._keys: dict[ShardKey, _Key] = {}
        self._ready: list[tuple[float, float, int, int, ShardKey]] = []  # (round, oldest unsent at, tie, version, key)
        self._timers: list[tuple[float, float, int, int, ShardKey]] = []  # (due, 0, tie, version, key)
        self._round = 0
        self._served: dict[ShardKey, int] = {}  # forgotten keys already served this round -> their next turn
        self._tie = 0
        self._forced = False
        self.in_flight = 0

    # --- inputs

    def update(self, key: ShardKey, backlog: BacklogView | None, now: float) -> None:
        """The spool says ``key`` now has ``backlog`` waiting (None: nothing)."""
        state = self._keys.get(key)
        if state is None:
            if backlog is None:
                return
            state = _Key(key, self._overhead(key[0]))
            state.turn = self._served.pop(key, 0)  # a key that emptied and came back keeps its place in the rounds
            self._keys[key] = state
        state.backlog = backlog
        if backlog is None and state.in_flight == 0:
            self._forget(state)  # memory stays O(keys with events); a parked key with nothing left is forgotten
            return
        self._evaluate(state, now)

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
            state.last_read_accepted_at = cut[-1].accepted_at
        unused = take.batches - len(batches)
        if unused:
            self._release(state, now, unused)  # evaluates the key
        else:
            self._evaluate(state, now)
        return batches

    def settle(self, batch: Batch, decision: Decision, now: float) -> None:
        """The request of ``batch`` ended with ``decision``; its spool work (remove, dead-letter) is done."""
        state = self._keys.get(batch.shard)
        if state is None:  # pragma: no cover - a key is kept while it has requests in flight
            return
        state.in_flight_events -= len(batch.events)
        state.in_flight_bytes -= sum(len(e.payload) for e in batch.events)
        if isinstance(decision, DeadLetter) and decision.reason is DeadLetterReason.PARKED_TOO_LONG:
            # A parked key's dead-letter pass goes on while older events remain; events accepted after the park
            # period ran out start a new period (the key is still probed, so a fixed key gets through).
            if state.parked_since is not None and batch.events:
                expiry = state.parked_since + self._policy.parked_dead_letter_after
                if batch.events[-1].accepted_at >= expiry:
                    state.parked_since = now
        elif isinstance(decision, Remove | RemoveExcept | DeadLetter):
            if (
                not state.failing
                or (batch.events and batch.events[0].seq <= state.retry_from_seq)
                or state.backlog is None
                or state.backlog.oldest_seq > state.retry_from_seq
            ):
                # A success of a batch read before a failure (several in flight) does not end the failing: only
                # the re-read of the failed batch does (or the failed events are gone).
                state.failing = False
                state.attempts = 0
                state.auth_renewals = 0
            if state.parked_since is not None:
                state.parked_since = None  # the probe got through: the key was fixed
                state.paused_until = 0.0
            if state.split_events and (
                (batch.events and batch.events[-1].seq >= state.split_until_seq)
                or (isinstance(decision, DeadLetter) and decision.reason is DeadLetterReason.REFUSED_EVENT)
            ):
                # Past the refused batch, or its bad event gone: the rest leaves in full batches (halved if need be).
                state.split_events = 0
        elif batch.events:
            first = batch.events[0].seq
            state.retry_from_seq = min(state.retry_from_seq, first) if state.failing else first
            state.failing = True
        if isinstance(decision, RetryAt):
            state.attempts += 1
            if decision.renewed_credentials:
                state.auth_renewals += 1
            state.paused_until = max(state.paused_until, decision.at)
        elif isinstance(decision, SplitBatch):
            state.split_events = decision.max_events
            state.split_until_seq = max(state.split_until_seq, decision.last_seq)
        elif isinstance(decision, ParkUntil):
            state.attempts += 1
            if state.parked_since is None:
                state.parked_since = now
            state.paused_until = decision.at
        self._release(state, now)

    def retry_later(self, batch: Batch, at: float, now: float) -> None:
        """The request of ``batch`` failed outside the sender's outcomes (an exception): read it again at ``at``."""
        self.settle(batch, RetryAt(at, "unexpected error"), now)

    def abandon(self, take: Take, at: float, now: float) -> None:
        """The read for ``take`` failed: the key tries again at ``at``."""
        state = self._keys.get(take.key)
        if state is None:  # pragma: no cover
            return
        state.reading = False
        state.failing = True
        state.paused_until = max(state.paused_until, at)
        self._release(state, now, take.batches)

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

    def is_parked(self, key: ShardKey) -> bool:
        """Whether ``key`` is parked (its events do not hold up a flush)."""
        state = self._keys.get(key)
        return state is not None and state.parked_since is not None

    @property
    def keys(self) -> int:
        """Keys with state (events waiting or requests in flight)."""
        return len(self._keys)

    # --- internals

    def _take(self, state: _Key, now: float) -> Take:
        parked_out = (
            state.parked_since is not None and now - state.parked_since >= self._policy.parked_dead_letter_after
        )
        max_events = self._policy.batch_max_events
        if state.split_events:
            max_events = min(max_events, state.split_events)
        payload_budget = self._policy.batch_max_bytes - state.overhead
        batches = 1
        if not (parked_out or state.failing or state.parked_since is not None or state.split_events):
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
        kind = TakeKind.DEAD_LETTER if parked_out else TakeKind.SEND
        return Take(state.key, kind, state.cursor, batches * payload_budget, batches * max_events, batches)

    def _release(self, state: _Key, now: float, requests: int = 1) -> None:
        state.in_flight -= requests
        self.in_flight -= requests
        if state.in_flight == 0:
            state.cursor = 0
            state.in_flight_events = 0
            state.in_flight_bytes = 0
        if state.backlog is None and state.in_flight == 0:
            self._forget(state)
            return
        self._evaluate(state, now)

    def _forget(self, state: _Key) -> None:
        del self._keys[state.key]
        if state.turn > self._round:
            self._served[state.key] = state.turn

    def _blocked(self, state: _Key) -> bool:
        """Waiting for something other than time: a read, or the end of in-flight requests after a failure."""
        if state.reading or state.unsent_events == 0:
            return True
        return (state.failing or state.parked_since is not None) and state.in_flight > 0

    def _full(self, state: _Key) -> bool:
        max_events = state.split_events or self._policy.batch_max_events
        events = state.unsent_events
        return (
            events >= max_events
            or state.overhead + state.unsent_bytes + max(0, events - 1) > self._policy.batch_max_bytes
        )

    def _due(self, state: _Key) -> float:
        """When the key becomes ready by time alone (assuming it is not blocked)."""
        if state.parked_since is not None or state.failing:
            return state.paused_until
        if self._forced or self._full(state):
            return state.paused_until
        return max(state.paused_until, state.oldest_unsent_at + self._policy.flush_interval)

    def _is_ready(self, state: _Key, now: float) -> bool:
        return not self._blocked(state) and self._due(state) <= now

    def _evaluate(self, state: _Key, now: float) -> None:
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
