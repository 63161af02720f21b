"""The pure batching accumulator: limits, readiness, retries and splitting, without an event loop."""

from __future__ import annotations

from sidecar.batch.accumulator import Shard
from sidecar.deliver.http import envelope_overhead
from sidecar.model import Region, SpooledEvent

KEY = ("wk", Region.US)


def event(seq: int, size: int = 100) -> SpooledEvent:
    """An event whose payload is ``size`` bytes."""
    return SpooledEvent("wk", Region.US, f"m{seq}", b"x" * size, 0.0, seq=seq)


def shard(max_bytes: int = 475_000, max_events: int = 2500) -> Shard:
    """A shard with the real envelope overhead."""
    return Shard(KEY, envelope_overhead("wk"), max_bytes, max_events)


def test_partial_batch_waits_for_the_flush_interval() -> None:
    """A partial batch is ready only once its oldest event has waited the interval, or when forced."""
    s = shard()
    s.add(event(1), now=10.0)
    assert not s.ready(10.5, flush_interval=1.0, forced=False)
    assert s.ready(10.5, flush_interval=1.0, forced=True)
    assert s.ready(11.0, flush_interval=1.0, forced=False)
    assert s.due_at(1.0) == 11.0


def test_batches_are_cut_at_the_byte_limit_including_the_envelope() -> None:
    """A cut batch's body (events, commas, envelope) never exceeds the byte limit."""
    s = shard(max_bytes=10_000)
    for seq in range(300):
        s.add(event(seq, 95), now=0.0)
    assert s.has_full_batch
    batch = s.next_batch()
    body = s.overhead + sum(len(e.payload) + 1 for e in batch.events)
    assert body <= 10_000 and body + 96 > 10_000
    assert [e.seq for e in batch.events] == list(range(len(batch.events)))


def test_batches_are_cut_at_the_event_limit() -> None:
    """No batch holds more than max_events."""
    s = shard(max_events=2500)
    for seq in range(2600):
        s.add(event(seq, 10), now=0.0)
    assert len(s.next_batch().events) == 2500
    assert len(s.next_batch().events) == 100


def test_retries_go_first_and_pause_the_shard() -> None:
    """A paused shard is not ready; after the pause its retry batch goes before new events."""
    s = shard()
    s.add(event(1), now=0.0)
    first = s.next_batch()
    s.add(event(2), now=0.0)
    s.retries.append(first)
    s.paused_until = 5.0
    assert not s.ready(4.0, 1.0, forced=True)
    assert s.ready(5.0, 1.0, forced=False)
    assert s.next_batch() is first


def test_split_halves_a_batch_in_order() -> None:
    """Splitting a refused batch queues both halves, first half first, before anything else."""
    s = shard()
    for seq in range(5):
        s.add(event(seq), now=0.0)
    batch = s.next_batch()
    first, second = s.split(batch)
    assert [e.seq for e in first.events] == [0, 1] and [e.seq for e in second.events] == [2, 3, 4]
    assert s.next_batch() is first and s.next_batch() is second


def test_a_failing_shard_sends_only_its_retries() -> None:
    """After a failed attempt, new batches wait until a retry succeeds, so an outage never moves a backlog into
    memory as ever more retry batches."""
    s = shard()
    for seq in range(10):
        s.add(event(seq), now=0.0)
    s.failing = True
    assert not s.ready(100.0, flush_interval=1.0, forced=True)
    assert s.due_at(1.0) is None
    s.retries.append(s.next_batch())
    assert s.ready(100.0, flush_interval=1.0, forced=False)
    s.failing = False
    s.add(event(99), now=0.0)
    assert s.ready(100.0, flush_interval=1.0, forced=False)
