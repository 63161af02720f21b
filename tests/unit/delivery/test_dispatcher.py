"""The dispatcher with a real memory spool, the real HTTP sender and the real local collector: admission (credentials,
then one grant, then the request), Flush, failures backed off and reported, and timers that ignore the wall clock."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest

from sidecar.backoff import Backoff
from sidecar.collector.server import Collector
from sidecar.delivery.dispatcher import DeliveryPolicy, Dispatcher
from sidecar.model import Batch, Event, Region
from sidecar.send.auth import Authorization, BasicAuthenticator
from sidecar.send.classify import Outcome
from sidecar.send.http import HttpSender, envelope_overhead
from sidecar.send.ratelimit import PacedLimiter
from sidecar.spool import MemoryStore, Spool
from sidecar.tasks import Supervision

POLICY = DeliveryPolicy(
    flush_interval=0.05,
    batch_max_bytes=475_000,
    batch_max_events=2500,
    max_in_flight=64,
    max_event_age=3600.0,
    parked_retry_interval=60.0,
    parked_dead_letter_after=3600.0,
    backoff=Backoff(0.01, 0.05),
)


class CountingLimiter(PacedLimiter):
    """A real paced limiter that counts its grants."""

    def __init__(self, rate: float = 1000) -> None:
        super().__init__(rate)
        self.grants = 0

    async def acquire(self) -> None:
        """Pace, then count."""
        await super().acquire()
        self.grants += 1


class HeldAuthenticator(BasicAuthenticator):
    """Basic auth that answers only once ``released`` is set (a token server answering late, all at once)."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.waiting = 0
        self.all_waiting = asyncio.Event()
        self.expected = 0

    async def authorize(self, write_key: str, region: Region) -> Authorization:
        """Wait for the release, then Basic."""
        self.waiting += 1
        if self.waiting == self.expected:
            self.all_waiting.set()
        await self.released.wait()
        return await super().authorize(write_key, region)


class Wall:
    """A wall clock a test can step."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        """Now, moved by ``offset`` seconds."""
        return time.time() + self.offset


def event(index: int, key: str) -> Event:
    """A valid track event of ``key``."""
    payload = f'{{"type":"track","event":"Dispatched","userId":"u{index}","messageId":"d-{index}"}}'.encode()
    return Event(key, Region.US, f"d-{index}", payload, time.time())


@pytest.fixture
async def spool() -> AsyncIterator[Spool]:
    """A started memory spool."""
    started = Spool(MemoryStore(), 10**8)
    await started.start()
    yield started
    await started.stop()


async def run(dispatcher: Dispatcher, sender: HttpSender) -> None:
    """Start the sender, then the dispatcher."""
    await sender.start()
    await dispatcher.start()


async def halt(dispatcher: Dispatcher, sender: HttpSender) -> None:
    """Stop the dispatcher, then the sender."""
    await dispatcher.stop()
    await sender.stop()


async def test_each_attempt_takes_exactly_one_grant(collector: Collector, spool: Spool) -> None:
    """Three keys and one throttled attempt: four requests, four grants; Flush reports every event delivered."""
    limiter = CountingLimiter()
    sender = HttpSender(dict.fromkeys(Region, collector.url), BasicAuthenticator(), 5.0)
    dispatcher = Dispatcher(spool, sender, POLICY, envelope_overhead, limiter=limiter)
    collector.faults.throttle_next = 1
    collector.faults.retry_after = 0
    await spool.append([event(i, f"wk-{i % 3}") for i in range(9)])
    await run(dispatcher, sender)
    try:
        async with asyncio.timeout(10):
            result = await dispatcher.flush()
    finally:
        await halt(dispatcher, sender)
    assert result.delivered == 9 and result.dead_lettered == 0 and result.parked == 0
    assert len(collector.store.requests) == 4 == limiter.grants == dispatcher.requests


async def test_an_authorisation_that_waits_holds_no_grant_and_the_pace_holds(
    collector: Collector, spool: Spool
) -> None:
    """30 keys whose credentials all arrive at once (a late token server): no grant is taken while they wait, and
    their requests then start at the limiter's pace (cap 20: at most 20 in any one-second window)."""
    authenticator = HeldAuthenticator()
    authenticator.expected = 30
    limiter = CountingLimiter(20)
    sender = HttpSender(dict.fromkeys(Region, collector.url), authenticator, 5.0)
    dispatcher = Dispatcher(spool, sender, POLICY, envelope_overhead, limiter=limiter)
    await spool.append([event(i, f"wk-held-{i}") for i in range(30)])
    await run(dispatcher, sender)
    try:
        flushing = asyncio.ensure_future(dispatcher.flush())
        async with asyncio.timeout(10):
            await authenticator.all_waiting.wait()
        assert limiter.grants == 0, "a request waiting for its credentials holds no grant"
        authenticator.released.set()
        async with asyncio.timeout(15):
            result = await flushing
    finally:
        await halt(dispatcher, sender)
    assert result.delivered == 30
    assert len(collector.store.requests) == 30
    assert collector.store.max_requests_in_window(1.0) <= 20


async def test_a_parked_key_does_not_hold_up_a_flush(collector: Collector, spool: Spool) -> None:
    """A revoked key is parked: Flush returns once the other key is delivered, reporting the parked events."""
    collector.faults.revoked_write_keys = {"wk-revoked"}
    sender = HttpSender(dict.fromkeys(Region, collector.url), BasicAuthenticator(), 5.0)
    dispatcher = Dispatcher(spool, sender, POLICY, envelope_overhead, limiter=CountingLimiter())
    await spool.append([event(1, "wk-revoked"), event(2, "wk-revoked"), event(3, "wk-good")])
    await run(dispatcher, sender)
    try:
        async with asyncio.timeout(10):
            result = await dispatcher.flush()
    finally:
        await halt(dispatcher, sender)
    assert (result.delivered, result.parked) == (1, 2) and len(result.parked_hashes) == 1


async def test_a_raising_sender_is_backed_off_reported_and_cleared(collector: Collector, spool: Spool) -> None:
    """A sender that raises twice: the unit ``delivery.send`` is a problem while it fails, then cleared; every event
    arrives (the key retried after the scheduler's backoff, its events still in the spool)."""

    class Raising(HttpSender):
        """Raises on the first two requests (a bug in a sender)."""

        failures = 2

        async def send(self, batch: Batch, authorization: Authorization) -> Outcome:
            """Raise while failures remain, else send."""
            if self.failures > 0:
                self.failures -= 1
                raise ZeroDivisionError("a bug in the sender")
            return await super().send(batch, authorization)

    changes: list[dict[str, str]] = []
    supervision = Supervision(on_change=lambda: changes.append(supervision.problems))
    sender = Raising(dict.fromkeys(Region, collector.url), BasicAuthenticator(), 5.0)
    dispatcher = Dispatcher(spool, sender, POLICY, envelope_overhead, supervision=supervision)
    await spool.append([event(i, "wk-raise") for i in range(5)])
    await run(dispatcher, sender)
    try:
        async with asyncio.timeout(10):
            result = await dispatcher.flush()
    finally:
        await halt(dispatcher, sender)
    assert result.delivered == 5 and sorted(collector.store.message_ids()) == [f"d-{i}" for i in range(5)]
    assert changes[0] == {"delivery.send": "ZeroDivisionError"} and changes[-1] == {}
    assert supervision.units()["delivery.dispatcher"] is False, "stopped"


async def test_timers_ignore_a_wall_clock_step(collector: Collector, spool: Spool) -> None:
    """The wall clock stepped back an hour right after an append: the partial batch still goes after the flush
    interval (timers run on the monotonic clock), not an hour later."""
    wall = Wall()
    sender = HttpSender(dict.fromkeys(Region, collector.url), BasicAuthenticator(), 5.0)
    dispatcher = Dispatcher(spool, sender, POLICY, envelope_overhead, wall=wall)
    arrived = asyncio.Event()
    unsubscribe = collector.store.subscribe(lambda _: arrived.set())
    await run(dispatcher, sender)
    try:
        await spool.append([event(1, "wk-step")])
        wall.offset = -3600.0
        async with asyncio.timeout(5):
            await arrived.wait()
    finally:
        unsubscribe()
        await halt(dispatcher, sender)
    assert collector.store.message_ids() == ["d-1"]


async def test_stop_without_start_and_twice_is_safe(spool: Spool) -> None:
    """The lifecycle: stop() before start() and twice does nothing; start() twice starts once."""
    sender = HttpSender(dict.fromkeys(Region, "http://127.0.0.1:9"), BasicAuthenticator(), 1.0)
    dispatcher = Dispatcher(spool, sender, POLICY, envelope_overhead)
    await dispatcher.stop()
    await dispatcher.start()
    await dispatcher.start()
    await dispatcher.stop()
    await dispatcher.stop()


async def test_an_event_whose_write_key_fills_the_body_limit_is_dead_lettered_not_read_forever(
    collector: Collector, spool: Spool
) -> None:
    """SIDECAR_BATCH_MAX_BYTES of 300 and a 300-character write key: the envelope alone is over the limit, so the
    event is dead-lettered with that reason (Flush returns) instead of being read again and again."""
    policy = dataclasses.replace(POLICY, batch_max_bytes=300)
    sender = HttpSender(dict.fromkeys(Region, collector.url), BasicAuthenticator(), 5.0)
    dead: list[str] = []

    class Observer:
        """Records dead-letter reasons."""

        def attempt_finished(self, batch: Batch, outcome: Outcome, seconds: float) -> None:
            """Not expected here."""

        def dead_lettered(self, events: object, reason: str) -> None:
            """Record the reason."""
            dead.append(str(reason))

        def rate_limited(self, seconds: float) -> None:
            """Not used."""

    dispatcher = Dispatcher(spool, sender, policy, envelope_overhead, observers=[Observer()])
    await spool.append([event(1, "k" * 300), event(2, "wk-short")])
    await run(dispatcher, sender)
    try:
        async with asyncio.timeout(10):
            result = await dispatcher.flush()
    finally:
        await halt(dispatcher, sender)
    assert (result.delivered, result.dead_lettered) == (1, 1)
    assert dead == ["too_large"]
    assert collector.store.message_ids() == ["d-2"]


async def test_a_key_made_ready_by_its_last_request_in_flight_is_dispatched(collector: Collector, spool: Spool) -> None:
    """One read, two batches: the first (sent by the reading request) is refused and splits, so the key waits for its
    other batch in flight, with no timer; when that one, sent on its own, settles last, the dispatcher must wake and
    send the halves. (A fault test under load once stalled here for good with 3,059 events waiting: only the
    reading request woke the dispatcher.)"""
    held = "d-15"  # in the second batch

    class Held(HttpSender):
        """Holds the second batch until ``released``, so that it settles after the first."""

        released = asyncio.Event()

        async def send(self, batch: Batch, authorization: Authorization) -> Outcome:
            """Wait for the release if the batch holds the held event, then send."""
            if any(e.message_id == held for e in batch.events):
                await self.released.wait()
            return await super().send(batch, authorization)

    collector.faults.reject_message_ids = {"d-3"}  # in the first batch
    policy = dataclasses.replace(POLICY, batch_max_events=10)
    sender = Held(dict.fromkeys(Region, collector.url), BasicAuthenticator(), 5.0)
    dispatcher = Dispatcher(spool, sender, policy, envelope_overhead)
    key = ("wk-two", Region.US)
    await spool.append([event(i, key[0]) for i in range(20)])
    await run(dispatcher, sender)
    try:
        flushing = asyncio.create_task(dispatcher.flush())
        async with asyncio.timeout(10):
            while not ((state := dispatcher.scheduler.state_of(key)) and state.failing and state.in_flight == 1):
                await asyncio.sleep(0.005)  # the first batch refused and settled; the second still held
        Held.released.set()
        async with asyncio.timeout(10):
            result = await flushing
    finally:
        await halt(dispatcher, sender)
    assert (result.delivered, result.dead_lettered) == (19, 1)
    assert sorted(collector.store.message_ids()) == sorted(f"d-{i}" for i in range(20) if i != 3)
