"""The pure part of batching: one :class:`Shard` per (write key, region), with no I/O and no event loop.

A shard holds events waiting to be sent and batches waiting to be retried. A batch is cut when the shard's turn
comes (not when it first fills), so a batch waiting for its turn under the rate cap keeps filling up to the limits:
``max_bytes`` of request body (events, commas and the envelope) and ``max_events``. A shard is *ready* when it has a
retry due, a full batch, a partial batch whose oldest event has waited ``flush_interval``, or a flush was asked for.
"""

from __future__ import annotations

from collections import deque

from sidecar.model import Batch, ShardKey, SpooledEvent


class Shard:
    """Events and retries of one (write key, region)."""

    __slots__ = (
        "failing",
        "held",
        "in_flight",
        "key",
        "last_active",
        "loaded_seq",
        "max_bytes",
        "max_events",
        "oldest_at",
        "overhead",
        "parked_since",
        "paused_until",
        "pending",
        "pending_bytes",
        "reloading",
        "retries",
        "spilled",
        "timer_due",
    )

    def __init__(self, key: ShardKey, overhead: int, max_bytes: int, max_events: int) -> None:
        self.key = key
        self.overhead = overhead
        self.max_bytes = max_bytes
        self.max_events = max_events
        self.pending: deque[SpooledEvent] = deque()
        self.pending_bytes = 0  # payloads plus one comma each
        self.oldest_at = 0.0
        self.retries: deque[Batch] = deque()
        self.paused_until = 0.0
        self.parked_since: float | None = None
        self.in_flight = 0
        self.last_active = 0.0
        self.timer_due = float("inf")
        # Spilling (see DeliveryDriver): past a few batches in memory, newer events stay on disk and are reloaded
        # by seq once the shard has room; loaded_seq is the newest seq the shard has taken, so a duplicate is dropped.
        self.loaded_seq = 0
        self.spilled = False
        self.reloading = False
        # While the last attempt failed, only retries go out: new batches would only join the retries in memory.
        self.failing = False
        self.held: list[SpooledEvent] = []

    def add(self, event: SpooledEvent, now: float) -> None:
        """Queue an event for the next batch."""
        if not self.pending:
            self.oldest_at = now
        self.pending.append(event)
        self.pending_bytes += len(event.payload) + 1
        self.last_active = now
        self.loaded_seq = max(self.loaded_seq, event.seq)

    def add_run(self, events: list[SpooledEvent], payload_bytes: int, now: float) -> None:
        """Queue several events at once (in seq order; ``payload_bytes`` is the sum of their payloads)."""
        if not self.pending:
            self.oldest_at = now
        self.pending.extend(events)
        self.pending_bytes += payload_bytes + len(events)
        self.last_active = now
        self.loaded_seq = max(self.loaded_seq, events[-1].seq)

    @property
    def has_full_batch(self) -> bool:
        """The pending events fill a batch to one of its limits."""
        return len(self.pending) >= self.max_events or self.overhead + self.pending_bytes > self.max_bytes

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing to retry, nothing in flight, nothing left on disk."""
        return not self.pending and not self.retries and self.in_flight == 0 and not self.spilled

    def ready(self, now: float, flush_interval: float, forced: bool) -> bool:
        """Whether the shard should send a batch now."""
        if now < self.paused_until:
            return False
        if self.retries:
            return True
        if not self.pending or self.failing:
            return False
        return forced or self.has_full_batch or now - self.oldest_at >= flush_interval

    def due_at(self, flush_interval: float) -> float | None:
        """When the shard becomes ready by time alone, or None if it has nothing to send."""
        if self.retries:
            return self.paused_until
        if self.pending and not self.failing:
            return max(self.paused_until, self.oldest_at + flush_interval)
        return None

    def next_batch(self) -> Batch:
        """The batch to send now: a retry first, else the oldest pending events up to the limits."""
        if self.retries:
            return self.retries.popleft()
        events: list[SpooledEvent] = []
        size = self.overhead
        payload = 0
        while self.pending and len(events) < self.max_events:
            cost = len(self.pending[0].payload) + 1
            if events and size + cost > self.max_bytes:
                break
            event = self.pending.popleft()
            events.append(event)
            size += cost
            payload += cost
        self.pending_bytes -= payload
        return Batch(self.key, events, payload)

    def split(self, batch: Batch) -> tuple[Batch, Batch]:
        """Halves of a refused batch, to be retried first, in order."""
        middle = len(batch.events) // 2
        halves = []
        for part in (batch.events[:middle], batch.events[middle:]):
            halves.append(Batch(self.key, part, sum(len(e.payload) + 1 for e in part), batch.attempts))
        first, second = halves
        self.retries.appendleft(second)
        self.retries.appendleft(first)
        return first, second

    def drain_all(self) -> list[SpooledEvent]:
        """Take every queued event and retry out of the shard (for dead-lettering a parked key)."""
        events = [event for batch in self.retries for event in batch.events]
        events.extend(self.pending)
        self.retries.clear()
        self.pending.clear()
        self.pending_bytes = 0
        return events
