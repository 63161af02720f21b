"""The scheduler core, driven by hand: readiness, order, in-flight bounds, retries, splits and parking, no loop."""

from __future__ import annotations

import random

from sidecar.backoff import Backoff
from sidecar.delivery.decide import Decision, GiveUp, ParkUntil, Remove, RetryAt, SplitBatch
from sidecar.delivery.scheduler import Oldest, Scheduler, SchedulerPolicy, Take, TakeKind, fit
from sidecar.model import Batch, DeadLetterReason, Region, ShardKey, SpooledEvent

OVERHEAD = 100
POLICY = SchedulerPolicy(
    flush_interval=1.0,
    batch_max_bytes=10_000,
    batch_max_events=10,
    max_in_flight=4,
    parked_dead_letter_after=100.0,
    backoff=Backoff(1.0, 1.0),
)


class Ceiling(random.Random):
    """A random source whose jitter is always its ceiling, so that a failure's backoff is known."""

    def uniform(self, a: float, b: float) -> float:
        """The upper bound."""
        return b


class FakeSpool:
    """A tiny in-memory spool, only so that tests can answer reads and tell the scheduler what joined it."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.events: dict[ShardKey, list[SpooledEvent]] = {}
        self.scheduler = scheduler
        self.seq = 0

    def append(self, key: ShardKey, count: int, at: float, size: int = 100) -> None:
        """Append ``count`` events of ``size`` bytes accepted at ``at``, and tell the scheduler."""
        first = self.seq + 1
        for _ in range(count):
            self.seq += 1
            event = SpooledEvent(key[0], key[1], f"m{self.seq}", b"x" * size, at, seq=self.seq)
            self.events.setdefault(key, []).append(event)
        self.scheduler.add(key, count, count * size, (first, at), at)

    def read(self, take: Take) -> list[SpooledEvent]:
        """The spool's per-key read."""
        out: list[SpooledEvent] = []
        size = 0
        for event in self.events.get(take.key, []):
            if event.seq <= take.after_seq:
                continue
            if len(out) >= take.max_events or (out and size + len(event.payload) > take.max_bytes):
                break
            out.append(event)
            size += len(event.payload)
        return out

    def remove(self, batch: Batch) -> Oldest | None:
        """Delivered or dead-lettered: the events leave; the key's oldest event left, as the spool answers."""
        gone = {e.seq for e in batch.events}
        left = self.events[batch.shard] = [e for e in self.events[batch.shard] if e.seq not in gone]
        return (left[0].seq, left[0].accepted_at) if left else None


def settle(scheduler: Scheduler, spool: FakeSpool, batch: Batch, decision: Decision, now: float) -> None:
    """Remove the batch's events from the spool, then settle it as the dispatcher does."""
    oldest = spool.remove(batch)
    scheduler.settle(batch, decision, now, batch.events, oldest)


def key(name: str) -> ShardKey:
    """A (write key, US) pair."""
    return (name, Region.US)


def setup() -> tuple[Scheduler, FakeSpool]:
    """A scheduler and its spool."""
    scheduler = Scheduler(POLICY, lambda _: OVERHEAD, rng=Ceiling())
    return scheduler, FakeSpool(scheduler)


def send_all(scheduler: Scheduler, spool: FakeSpool, now: float) -> list[Batch]:
    """Take and read the next read's batches (several for a key with several full batches)."""
    take = scheduler.next_take(now)
    if take is None:
        return []
    return scheduler.read_done(take, spool.read(take), now)


def send(scheduler: Scheduler, spool: FakeSpool, now: float) -> Batch | None:
    """Take and read the next read, expecting one batch at most."""
    batches = send_all(scheduler, spool, now)
    assert len(batches) <= 1, batches
    return batches[0] if batches else None


def test_a_partial_batch_waits_for_the_flush_interval_and_a_full_one_goes_at_once() -> None:
    """Readiness: a full batch now; a partial one once its oldest event has waited the interval (next_due says when)."""
    scheduler, spool = setup()
    spool.append(key("a"), 3, at=10.0)
    assert scheduler.next_take(10.5) is None
    assert scheduler.next_due(10.5) == 11.0
    spool.append(key("b"), 10, at=10.5)
    batch = send(scheduler, spool, 10.5)
    assert batch is not None and batch.shard == key("b") and len(batch.events) == 10
    batch = send(scheduler, spool, 11.0)
    assert batch is not None and batch.shard == key("a") and len(batch.events) == 3


def test_a_flush_forces_partial_batches() -> None:
    """While forced, a partial batch is ready at once; after, it waits again."""
    scheduler, spool = setup()
    spool.append(key("a"), 1, at=10.0)
    scheduler.set_forced(True, 10.0)
    assert send(scheduler, spool, 10.0) is not None


def test_ready_keys_are_served_oldest_waiting_event_first_one_request_each() -> None:
    """A busy key does not starve a quiet one: one read per key per round, oldest waiting event first."""
    scheduler, spool = setup()
    spool.append(key("busy"), 9, at=1.0)
    spool.append(key("quiet"), 1, at=2.0)
    spool.append(key("busy"), 20, at=3.0)
    reads = []
    for _ in range(3):
        batches = send_all(scheduler, spool, 5.0)
        reads.append((batches[0].shard[0], len(batches)))
    assert reads == [("busy", 2), ("quiet", 1), ("busy", 1)]
    assert scheduler.next_take(5.0) is None  # max_in_flight = 4


def test_one_key_may_have_several_requests_in_flight_each_past_the_last() -> None:
    """A backlog of several batches is read several batches at a time and goes out on several requests; the cursor
    makes them disjoint."""
    scheduler, spool = setup()
    spool.append(key("a"), 25, at=1.0)
    first = send_all(scheduler, spool, 2.0)
    second = send_all(scheduler, spool, 2.0)
    seqs = [[e.seq for e in b.events] for b in first + second]
    assert [len(first), len(second)] == [2, 1]
    assert seqs == [list(range(1, 11)), list(range(11, 21)), list(range(21, 26))]
    assert scheduler.in_flight == 3


def test_a_batch_is_cut_to_the_body_limit() -> None:
    """Events read are trimmed so that envelope, payloads and commas fit batch_max_bytes."""
    events = [SpooledEvent("a", Region.US, f"m{i}", b"x" * 3000, 0.0, seq=i) for i in range(1, 5)]
    assert len(fit(events, OVERHEAD, 10_000)) == 3
    assert len(fit(events[:1], OVERHEAD, 1000)) == 1  # one event alone is still sent (a 413 isolates it)


def test_a_retry_waits_for_its_backoff_then_reads_the_oldest_events_again() -> None:
    """A failed batch is not kept: the key is paused, then re-reads from its oldest event, one request at a time."""
    scheduler, spool = setup()
    spool.append(key("a"), 25, at=1.0)
    first, second = send_all(scheduler, spool, 2.0)
    scheduler.settle(first, RetryAt(5.0, "HTTP 503"), 2.1)
    assert scheduler.next_take(2.2) is None  # failing: waits for the other request in flight
    settle(scheduler, spool, second, Remove(), 2.3)
    assert scheduler.next_take(4.9) is None and scheduler.next_due(4.9) == 5.0
    again = send(scheduler, spool, 5.0)
    assert again is not None and [e.seq for e in again.events] == list(range(1, 11))
    assert again.attempts == 1
    assert scheduler.next_take(5.0) is None  # one at a time until a success
    settle(scheduler, spool, again, Remove(), 5.1)
    after = send_all(scheduler, spool, 5.1)
    assert after and after[0].attempts == 0 and after[0].events[0].seq == 21


def test_a_split_reads_half_as_many_events_until_past_the_refused_batch() -> None:
    """A refused batch is re-read in halves; past its last seq the key reads full batches again."""
    scheduler, spool = setup()
    spool.append(key("a"), 10, at=1.0)
    batch = send(scheduler, spool, 2.0)
    assert batch is not None
    spool.append(key("a"), 20, at=1.5)
    scheduler.settle(batch, SplitBatch(5, batch.events[-1].seq, "HTTP 400"), 2.0)
    halves = []
    for _ in range(2):
        half = send(scheduler, spool, 2.0)
        assert half is not None
        halves.append(len(half.events))
        settle(scheduler, spool, half, Remove(), 2.0)
    assert halves == [5, 5]
    full = send_all(scheduler, spool, 2.0)
    assert [len(b.events) for b in full] == [10, 10]


def test_once_the_refused_event_is_dead_lettered_the_other_halves_go_then_full_batches() -> None:
    """Halving ends with the bad event: the rest of the refused batch leaves in the halves not yet sent (1, 2 and 4
    events, never the refused whole again), then the key reads full batches."""
    scheduler, spool = setup()
    spool.append(key("a"), 8, at=1.0)
    refused = send(scheduler, spool, 2.0)
    assert refused is not None and len(refused.events) == 8
    last = refused.events[-1].seq
    sizes = []
    size = 8
    while size > 1:  # the bad event is always the first: every half that holds it is refused again
        size //= 2
        scheduler.settle(refused, SplitBatch(size, last, "HTTP 400"), 2.0)
        refused = send(scheduler, spool, 2.0)
        assert refused is not None
        sizes.append(len(refused.events))
    assert sizes == [4, 2, 1]
    settle(scheduler, spool, refused, GiveUp(DeadLetterReason.REFUSED_EVENT, "HTTP 400"), 2.0)
    rest = []
    for _ in range(3):
        part = send(scheduler, spool, 2.0)
        assert part is not None
        rest.append(len(part.events))
        settle(scheduler, spool, part, Remove(), 2.0)
    assert rest == [1, 2, 4]
    spool.append(key("a"), 25, at=2.0)
    assert [len(b.events) for b in send_all(scheduler, spool, 2.0)] == [10, 10]


def test_a_key_whose_every_event_is_refused_takes_2n_minus_1_requests() -> None:
    """200 events, each refused alone and in any batch: every part is one request, 2 x 200 - 1 in all, and every
    event is dead-lettered once."""
    scheduler, spool = setup()
    policy_events = 200
    scheduler = Scheduler(
        SchedulerPolicy(1.0, 10**6, 1000, 4, 100.0, Backoff(1.0, 1.0)), lambda _: OVERHEAD, rng=Ceiling()
    )
    spool = FakeSpool(scheduler)
    spool.append(key("a"), policy_events, at=1.0)
    requests = dead = 0
    while True:
        batch = send(scheduler, spool, 2.0)
        if batch is None:
            break
        requests += 1
        if len(batch.events) == 1:
            dead += 1
            settle(scheduler, spool, batch, GiveUp(DeadLetterReason.REFUSED_EVENT, "HTTP 400"), 2.0)
        else:
            scheduler.settle(batch, SplitBatch(len(batch.events) // 2, batch.events[-1].seq, "HTTP 400"), 2.0)
    assert (requests, dead) == (2 * policy_events - 1, policy_events)
    assert scheduler.keys == 0


def test_a_key_that_emptied_and_came_back_does_not_jump_the_round() -> None:
    """Trickle traffic: a key whose backlog emptied and refilled joins the next round like a key that kept events,
    so a key waiting in that round with an older event goes first (no starvation by keys that come and go)."""
    scheduler, spool = setup()
    spool.append(key("kept"), 1, at=0.0)
    spool.append(key("emptied"), 1, at=0.0)
    first = send(scheduler, spool, 1.0)
    second = send(scheduler, spool, 1.0)
    assert first is not None and second is not None
    kept, emptied = (first, second) if first.shard == key("kept") else (second, first)
    spool.append(key("kept"), 1, at=1.1)  # arrives while its request is in flight: the key waits for the next round
    settle(scheduler, spool, kept, Remove(), 1.2)
    settle(scheduler, spool, emptied, Remove(), 1.2)  # its backlog is empty: the core forgets the key
    spool.append(key("emptied"), 1, at=1.3)
    order = [send(scheduler, spool, 3.0), send(scheduler, spool, 3.0)]
    assert [b.shard for b in order if b is not None] == [key("kept"), key("emptied")]


def test_a_parked_key_holds_nothing_and_is_probed_then_dead_lettered() -> None:
    """401/403: no events in memory, one probe per park period, a dead-letter pass after the limit, others go on."""
    scheduler, spool = setup()
    spool.append(key("revoked"), 25, at=1.0)
    spool.append(key("good"), 1, at=1.0)
    first_read = send_all(scheduler, spool, 2.0)
    assert [b.shard for b in first_read] == [key("revoked")] * 2
    for probe in first_read:
        scheduler.settle(probe, ParkUntil(50.0, "HTTP 401"), 2.0)
    assert scheduler.is_parked(key("revoked"))
    good = send(scheduler, spool, 2.0)
    assert good is not None and good.shard == key("good")
    assert scheduler.next_take(49.0) is None
    probe = send(scheduler, spool, 50.0)
    assert probe is not None and probe.shard == key("revoked") and probe.attempts == 2
    scheduler.settle(probe, ParkUntil(150.0, "HTTP 401"), 50.0)
    take = scheduler.next_take(150.0)
    assert take is not None and take.kind is TakeKind.DEAD_LETTER
    passes = 0
    while take is not None:
        (batch,) = scheduler.read_done(take, spool.read(take), 150.0)
        settle(scheduler, spool, batch, GiveUp(DeadLetterReason.PARKED_TOO_LONG, ""), 150.0)
        passes += 1
        take = scheduler.next_take(150.0)
    assert passes == 3 and scheduler.keys == 1  # only "good" (in flight) is left


def test_a_probe_that_gets_through_unparks_the_key() -> None:
    """A delivered probe ends the parking; the key's backlog flows again."""
    scheduler, spool = setup()
    spool.append(key("a"), 15, at=1.0)
    probe = send(scheduler, spool, 2.0)
    assert probe is not None
    scheduler.settle(probe, ParkUntil(10.0, "HTTP 403"), 2.0)
    probe = send(scheduler, spool, 10.0)
    assert probe is not None
    settle(scheduler, spool, probe, Remove(), 10.0)
    assert not scheduler.is_parked(key("a"))
    assert send(scheduler, spool, 10.0) is not None


def test_a_failed_read_pauses_the_key_and_keys_are_forgotten_when_empty() -> None:
    """An abandoned take frees its slot and pauses the key; a key with nothing left leaves the core."""
    scheduler, spool = setup()
    spool.append(key("a"), 10, at=1.0)
    take = scheduler.next_take(2.0)
    assert take is not None
    assert scheduler.abandon(take, 2.0) == 1.0
    assert scheduler.in_flight == 0 and scheduler.next_take(2.5) is None
    batch = send(scheduler, spool, 3.0)
    assert batch is not None
    settle(scheduler, spool, batch, Remove(), 3.0)
    assert scheduler.keys == 0 and scheduler.next_due(3.0) is None


def test_appends_to_a_waiting_key_do_not_pile_up_entries() -> None:
    """A busy key's notifications keep one place in line, not one per append."""
    scheduler, spool = setup()
    for i in range(100):
        spool.append(key("a"), 1, at=1.0 + i * 0.0001 if i < 9 else 1.0)
    assert len(scheduler._timers) + len(scheduler._ready) <= 2


def test_a_key_whose_read_found_nothing_waits_for_its_requests_in_flight() -> None:
    """Three batches in flight; the second fails and the first then succeeds, which ends the failing. The failed
    events are behind the read cursor, so a read now finds nothing: the key then waits for its last request in flight
    (the cursor starts over from its oldest event) instead of being taken, and read in vain, again and again."""
    scheduler, spool = setup()
    spool.append(key("a"), 30, at=1.0)
    first, second, third = send_all(scheduler, spool, 2.0)
    scheduler.settle(second, RetryAt(2.0, "HTTP 503"), 2.0)
    settle(scheduler, spool, first, Remove(), 2.0)
    assert send_all(scheduler, spool, 3.0) == []  # read past the cursor: nothing there
    assert scheduler.next_take(3.0) is None, "taken again, to read nothing again"
    assert scheduler.next_due(3.0) is None
    settle(scheduler, spool, third, Remove(), 3.0)
    again = send_all(scheduler, spool, 3.0)
    assert [[e.seq for e in b.events] for b in again] == [list(range(11, 21))]
