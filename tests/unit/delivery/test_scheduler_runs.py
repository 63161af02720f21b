"""The scheduler core under random runs: refusals, 5xx, parking and answers in any order, several requests in flight.

Each run drives one :class:`Scheduler` against the test's in-memory spool the way the dispatcher does (take, read,
send, settle). Segment's answers come from a seeded random source, the dispatcher's own
:func:`~sidecar.delivery.decide.decide` makes decisions of them, and they settle in random order. Whatever happens,
every event ends delivered or dead-lettered, the scheduler's counts agree with the spool after every step, the
in-flight bound holds, and a key never reads nothing twice without a settle in between (no busy loop).
"""

from __future__ import annotations

import random

import pytest

from sidecar.backoff import Backoff
from sidecar.delivery.decide import DecisionRules, GiveUp, Remove, decide
from sidecar.delivery.scheduler import Scheduler, SchedulerPolicy
from sidecar.model import Batch, Region, ShardKey
from sidecar.send.classify import Delivered, Outcome, Retry, Split, Unauthorized
from tests.unit.delivery.test_scheduler import FakeSpool

KEYS: list[ShardKey] = [("wk-a", Region.US), ("wk-b", Region.EU)]
MAX_STEPS = 50_000
RULES = DecisionRules(Backoff(0.01, 0.05), parked_retry_interval=0.5)


def answer(
    rng: random.Random, batch: Batch, bad: set[int], now: float, unauthorized_until: float, errors: float
) -> Outcome:
    """Segment's answer to ``batch``: 401 for a while, then some 503s, 400 for a batch holding a bad event, else 200."""
    if now < unauthorized_until:
        return Unauthorized("HTTP 401", 401)
    if rng.random() < errors:
        return Retry("HTTP 503", after=rng.uniform(0.0, 0.05), status=503)
    if any(event.seq in bad for event in batch.events):
        return Split("HTTP 400", 400)
    return Delivered(200)


@pytest.mark.parametrize("seed", range(300))
def test_every_event_leaves_and_the_counts_hold_whatever_the_answers(seed: int) -> None:
    """One random run (see the module docstring)."""
    rng = random.Random(seed)
    policy = SchedulerPolicy(
        flush_interval=1.0,
        batch_max_bytes=100_000,
        batch_max_events=rng.choice([5, 10, 50]),
        max_in_flight=rng.choice([1, 2, 4, 8]),
        parked_dead_letter_after=1e9,
        backoff=Backoff(0.01, 0.05),
    )
    scheduler = Scheduler(policy, lambda _: 100, rng=random.Random(seed))
    spool = FakeSpool(scheduler)
    for key in KEYS[: rng.randint(1, 2)]:
        spool.append(key, rng.randint(1, 300), at=0.0)
    everything = [event.seq for events in spool.events.values() for event in events]
    bad = {seq for seq in everything if rng.random() < rng.choice([0.0, 0.02, 0.1])}
    unauthorized_until = rng.choice([0.0, 0.0, 0.6])
    errors = rng.choice([0.0, 0.1, 0.3])
    scheduler.set_forced(True, 0.0)  # a Flush: partial batches go at once
    now = 0.0
    in_flight: list[Batch] = []
    read_nothing: set[ShardKey] = set()  # keys whose last read found nothing, with no settle or append since
    for _ in range(MAX_STEPS):
        # Take (most of the time), or settle one answer in flight, in random order.
        take = scheduler.next_take(now) if rng.random() < 0.7 or not in_flight else None
        if take is not None:
            events = spool.read(take)
            if not events:
                assert take.key not in read_nothing, f"{take.key} read nothing twice in a row (a busy loop)"
                read_nothing.add(take.key)
            in_flight += scheduler.read_done(take, events, now)
        elif in_flight:
            batch = in_flight.pop(rng.randrange(len(in_flight)))
            now += 0.001
            decision = decide(batch, answer(rng, batch, bad, now, unauthorized_until, errors), now, RULES, rng)
            read_nothing.discard(batch.shard)
            if isinstance(decision, Remove | GiveUp):
                oldest = spool.remove(batch)
                scheduler.settle(batch, decision, now, batch.events, oldest)
            else:
                scheduler.settle(batch, decision, now)
        else:
            if not any(spool.events.values()):
                break  # everything left the spool
            due = scheduler.next_due(now)
            assert due is not None, f"stalled: {sum(map(len, spool.events.values()))} events waiting, no timer"
            now = max(now, due) + 0.001
        assert scheduler.in_flight <= policy.max_in_flight
        for key, events in spool.events.items():
            assert scheduler.waiting_events(key) == len(events), "the scheduler's count left the spool's"
    else:
        pytest.fail(f"not done after {MAX_STEPS} steps")
