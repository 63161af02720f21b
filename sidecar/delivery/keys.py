"""The values the scheduler deals in (its policy, a take) and the state it keeps per key (:class:`KeyState`)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from sidecar.backoff import Backoff
from sidecar.model import ShardKey, SpooledEvent, by_key, payload_bytes

Oldest = tuple[int, float]
"""A key's oldest event left in the spool: (seq, acceptance time in Unix seconds)."""


def joined_by_key(events: Sequence[SpooledEvent]) -> list[tuple[ShardKey, int, int, SpooledEvent]]:
    """Events that joined the queue (in seq order), per key in first-seen order: (key, events, payload bytes, the
    key's first event)."""
    return [(key, len(group), payload_bytes(group), group[0]) for key, group in by_key(events)]


def same_clock(accepted_at: float) -> float:
    """The identity: the scheduler's clock is the clock of ``accepted_at`` (tests drive it by hand)."""
    return accepted_at


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
    backoff: Backoff = field(default_factory=lambda: Backoff(0.5, 30.0))
    """Delay before a key whose attempt failed is tried again (the outcome's own delay, if longer, wins)."""


class TakeKind(enum.Enum):
    """What the shell does with the events it reads for a take."""

    SEND = "send"
    DEAD_LETTER = "dead_letter"
    """The key has been parked for longer than ``parked_dead_letter_after``: dead-letter what is read."""
    TOO_LARGE = "too_large"
    """The key's batch envelope alone (its write key) fills ``batch_max_bytes``: no event of it can ever be sent, so
    what is read is dead-lettered rather than read again and again."""


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


class KeyState:
    """One key's state; see :mod:`sidecar.delivery.scheduler`."""

    __slots__ = (
        "attempts",
        "auth_renewals",
        "cursor",
        "drained",
        "failing",
        "in_flight",
        "in_flight_bytes",
        "in_flight_events",
        "key",
        "last_read_accepted_at",
        "oldest_at",
        "oldest_seq",
        "overhead",
        "parked_since",
        "paused_until",
        "placed",
        "reading",
        "retry_from_seq",
        "split_until_seq",
        "splits",
        "turn",
        "version",
        "waiting_bytes",
        "waiting_events",
    )

    def __init__(self, key: ShardKey, overhead: int) -> None:
        self.key = key
        self.overhead = overhead
        self.waiting_events = 0  # in the spool, in flight included
        self.waiting_bytes = 0
        self.oldest_seq = 0
        self.oldest_at = 0.0  # on the scheduler's clock
        self.in_flight = 0  # requests (and dead-letter passes) taken and not settled
        self.in_flight_events = 0
        self.in_flight_bytes = 0
        self.cursor = 0  # highest seq in flight; 0 when nothing is
        self.drained = False  # a read past the cursor found nothing: wait for a request in flight (or an append)
        self.last_read_accepted_at = 0.0
        self.reading = False
        self.paused_until = 0.0
        self.failing = False  # an attempt failed: one request at a time, from the oldest event, until one succeeds
        self.retry_from_seq = 0  # first seq of the earliest failed batch: a success from there ends the failing
        self.parked_since: float | None = None
        self.attempts = 0
        self.auth_renewals = 0
        self.splits: list[int] = []  # sizes of the parts of a refused batch still to send; the next part is last
        self.split_until_seq = 0  # the last seq of the refused batch being split
        self.turn = 0  # the round in which the key may send next (one request per key per round)
        self.version = 0  # bumped whenever the key leaves its place in line or on a timer (older entries are stale)
        self.placed: tuple[bool, float, float] | None = None  # (ready, round or due, oldest) of the valid entry

    @property
    def unsent_events(self) -> int:
        return max(0, self.waiting_events - self.in_flight_events)

    @property
    def unsent_bytes(self) -> int:
        return max(0, self.waiting_bytes - self.in_flight_bytes)

    @property
    def oldest_unsent_at(self) -> float:
        """Acceptance time of the oldest unsent event; a lower bound while requests are in flight."""
        if self.in_flight_events == 0:
            return self.oldest_at
        return self.last_read_accepted_at
