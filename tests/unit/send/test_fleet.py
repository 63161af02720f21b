"""The fleet-wide limiter against a real redis-server: slots on Redis's clock, fairness, NOSCRIPT, fallback, secrets."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from itertools import pairwise
from pathlib import Path

import pytest
import redis.asyncio as redis
from structlog.testing import capture_logs

from sidecar.config import load
from sidecar.send._fleet_budget import SlotBook
from sidecar.send._fleet_redis import client as fleet_client
from sidecar.send.fleet import (
    DEFAULT_KEY_PREFIX,
    LEAD,
    LEASE,
    ClockOffset,
    FleetBudget,
    RedisLimiter,
    Reservation,
    bound,
    default_key,
    local_rate,
    redact_url,
    tolerance,
)
from sidecar.send.ratelimit import HEADROOM
from tests.fleet.redis_server import RedisServer, free_port, running_redis

PATIENT = 1.0
"""A Redis call time limit a busy test machine does not trip; the tests of the time limit itself set their own."""


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[redis.Redis]:
    """A plain asyncio client of the test server."""
    conn = redis.from_url(redis_server.url)
    yield conn
    await conn.aclose()


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most timestamps inside any half-open sliding window of ``window`` seconds."""
    ordered = sorted(times)
    best = 0
    low = 0
    for high, moment in enumerate(ordered):
        while ordered[low] <= moment - window:
            low += 1
        best = max(best, high - low + 1)
    return best


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition()`` every 20 ms until it is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def drive(limiter: RedisLimiter, workers: int, until: float) -> list[float]:
    """Run ``workers`` tasks acquiring in a loop until the monotonic time ``until``; return the grant times."""
    grants: list[float] = []

    async def worker() -> None:
        while time.monotonic() < until:
            await limiter.acquire()
            grants.append(time.monotonic())

    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())
    return grants


# --- pure parts


def test_default_key_is_derived_from_the_integration_name_only() -> None:
    """Two sidecars of one partner compute the same key; two partners get different ones."""
    assert default_key("acme-mail") == DEFAULT_KEY_PREFIX + "acme-mail"
    assert default_key("acme-mail") != default_key("other-tool")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:hunter2@cache.internal:6380/1", "redis://***@cache.internal:6380/1"),
        ("rediss://app:hunter2@cache.internal/0", "rediss://***@cache.internal/0"),
        ("redis://cache.internal:6379/0?password=hunter2", "redis://cache.internal:6379/0"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
    ],
)
def test_redact_url_drops_credentials_and_query(url: str, expected: str) -> None:
    """No password survives redaction, whether in the user-info part or in the query string."""
    assert redact_url(url) == expected
    assert "hunter2" not in redact_url(url)


def test_bound_is_within_the_cap_for_whole_number_caps() -> None:
    """With 90% headroom and a 0.1 s tolerance the grants never exceed the cap (caps 1 to 1000), let alone 1.2x."""
    for cap in range(1, 1001):
        assert bound(cap) <= cap <= math.floor(1.2 * cap + 1e-9), cap
        assert tolerance(cap) == pytest.approx(0.1), cap


def test_bound_figures_quoted_in_the_docs() -> None:
    """The figures docs/fleet.md quotes: 50 at a cap of 50, 10 at a cap of 10; a looser tolerance is clamped."""
    assert (bound(50), bound(10)) == (50, 10)
    assert tolerance(10, preferred=1.0) == pytest.approx(12 / 9 - 1, abs=1e-5)


def test_members_on_their_own_shares_never_pass_the_cap_however_their_paces_line_up() -> None:
    """Paced at ``local_rate``, a member starts at most ``ceil(rate)`` requests in a one-second window; the fleet's
    members together stay within the cap for caps of 10 and more and fleets of 1 to 10 (9/7 a second each, at a cap
    of 10 and 7 members, would allow 14)."""
    for cap in range(10, 201):
        for size in range(1, 11):
            rate = local_rate(cap, size)
            assert rate <= HEADROOM * cap / size + 1e-9
            assert size * math.ceil(rate - 1e-9) <= cap, (cap, size, rate)
    assert 7 * math.ceil(HEADROOM * 10 / 7) == 14  # the unrounded share would not hold


def test_local_pace_figures_quoted_in_the_docs() -> None:
    """docs/fleet.md's worked example: 15 and 4 a second at a cap of 50 (3 and 10 members), 3 and 0.9 at a cap of 10;
    the wait before a member paces alone, with a precise clock, is T + L + A + D + one local interval."""
    assert [local_rate(50, 3), local_rate(50, 10), local_rate(10, 3)] == [15, 4, 3]
    assert local_rate(10, 10) == pytest.approx(0.9)
    waits = [0.2 + LEASE + LEAD + tolerance(cap) + 1 / local_rate(cap, size) for cap, size in ((50, 3), (50, 10))]
    assert [round(wait, 2) for wait in waits] == [1.47, 1.65]


def test_reservation_slots_and_offset_bounds() -> None:
    """A reply bounds Redis's clock minus ours by the round trip: TIME was read between sending and receiving."""
    reservation = Reservation(now=5_000_000, first=5_100_000, count=3, interval=50_000, sent=10.0, received=10.004)
    assert reservation.slots == (5_100_000, 5_150_000, 5_200_000)
    low, high = reservation.offset_bounds
    assert (low, high) == (pytest.approx(-5.004), pytest.approx(-5.0))
    assert reservation.rtt == pytest.approx(0.004)


def test_clock_offset_narrows_to_the_fastest_round_trip_and_never_maps_early() -> None:
    """A slow reply after a fast one keeps the fast one's precision; a slot maps to when it has surely begun."""
    offset = ClockOffset()
    offset.update(Reservation(now=100_000_000, first=0, count=1, interval=1, sent=10.0, received=10.001))
    assert offset.uncertainty == pytest.approx(0.001)
    offset.update(Reservation(now=101_050_000, first=0, count=1, interval=1, sent=10.95, received=11.15))
    # The 200 ms round trip did not blur it: 1 ms, widened by the assumed drift (1 ms/s) over the 1.15 s between them.
    assert offset.uncertainty == pytest.approx(0.001 + 2 * 0.001 * 1.149)
    # True offset here is 90.0 (Redis = local + 90): slot at Redis 101.5 s begins at local 11.5; never mapped earlier.
    assert 11.5 <= offset.local(101_500_000) <= 11.5 + offset.uncertainty


def test_clock_offset_starts_over_when_replies_contradict_it() -> None:
    """Redis's clock stepping (a failover to another host) resets the interval to the newest reply."""
    offset = ClockOffset()
    offset.update(Reservation(now=100_000_000, first=0, count=1, interval=1, sent=10.0, received=10.001))
    offset.update(Reservation(now=105_000_000, first=0, count=1, interval=1, sent=11.0, received=11.002))
    assert offset.uncertainty == pytest.approx(0.002)
    assert offset.local(105_000_000) == pytest.approx(11.002)


def test_slot_book_drops_late_slots_and_takes_back_a_cancelled_one() -> None:
    """A slot reached after its deadline is dropped (never used late); a slot given back is the next one taken."""
    offset = ClockOffset()
    reservation = Reservation(now=0, first=0, count=3, interval=100_000, sent=10.0, received=10.001)
    offset.update(reservation)
    book = SlotBook()
    assert book.add(reservation, offset, tolerance=0.1)
    first = book.take(10.05)
    assert first is not None and first[0] == pytest.approx(10.001)
    book.give_back(first)
    assert book.take(10.05) == first
    # At 10.2 the second slot (10.101, deadline ~10.198) is too late; the third (10.201) is still ahead.
    third = book.take(10.2)
    assert third is not None and third[0] == pytest.approx(10.201)
    assert (book.wasted, len(book)) == (1, 0)


def test_slot_book_refuses_slots_when_the_clock_is_too_uncertain() -> None:
    """A reply whose round trip leaves no lateness allowance yields no usable slots."""
    offset = ClockOffset()
    reservation = Reservation(now=0, first=0, count=2, interval=100_000, sent=10.0, received=10.095)
    offset.update(reservation)
    book = SlotBook()
    assert not book.add(reservation, offset, tolerance=0.1)
    assert book.wasted == 2


def test_from_settings_derives_key_and_fallback_rate() -> None:
    """The key comes from the integration name unless SIDECAR_REDIS_KEY is set; the fallback is cap / fleet size."""
    base = {"SIDECAR_REDIS_URL": "redis://127.0.0.1:1/0", "SIDECAR_INTEGRATION_NAME": "acme-mail"}
    settings, _ = load({**base, "SIDECAR_MAX_REQUESTS_PER_SECOND": "40", "SIDECAR_FLEET_SIZE": "4"})
    limiter = RedisLimiter.from_settings(settings)
    assert limiter.key == "segment-sidecar:ratelimit:acme-mail"
    assert limiter.fallback_requests_per_second == pytest.approx(10 * HEADROOM)
    settings, _ = load({**base, "SIDECAR_REDIS_KEY": "custom:budget"})
    assert RedisLimiter.from_settings(settings).key == "custom:budget"


# --- the script, on Redis's clock


async def test_slots_are_spaced_one_interval_apart_on_redis_clock(client: redis.Redis) -> None:
    """Consecutive reservations continue the schedule exactly one interval after the previous slot."""
    budget = FleetBudget(client, "k", interval=0.1, timeout=PATIENT)
    first = await budget.reserve(4)
    second = await budget.reserve(2)
    slots = first.slots + second.slots
    assert [b - a for a, b in pairwise(slots)] == [100_000] * 5
    assert first.first == first.now  # an empty budget starts at Redis's now, not earlier


async def test_no_burst_after_idle(client: redis.Redis) -> None:
    """After an idle spell the schedule restarts at Redis's now: no slots in the past are handed out."""
    budget = FleetBudget(client, "k", interval=0.01, timeout=PATIENT)
    await budget.reserve(3)
    await asyncio.sleep(0.1)  # the idle spell itself is what is being tested
    after = await budget.reserve(5)
    assert after.first == after.now
    assert all(slot >= after.now for slot in after.slots)


async def test_two_budgets_on_one_key_get_disjoint_spaced_slots(redis_server: RedisServer) -> None:
    """Two clients sharing a key never receive the same slot, and all slots together stay one interval apart."""
    one, two = redis.from_url(redis_server.url), redis.from_url(redis_server.url)
    try:
        budgets = [FleetBudget(one, "shared", 0.02, timeout=PATIENT), FleetBudget(two, "shared", 0.02, timeout=PATIENT)]
        results = await asyncio.gather(*(budgets[i % 2].reserve(1 + i % 3) for i in range(20)))
    finally:
        await one.aclose()
        await two.aclose()
    slots = sorted(slot for reservation in results for slot in reservation.slots)
    assert len(set(slots)) == len(slots)
    assert min(b - a for a, b in pairwise(slots)) == 20_000


async def test_keys_are_isolated(client: redis.Redis) -> None:
    """Two integration names on one Redis keep two schedules: one partner's load does not delay the other."""
    busy = FleetBudget(client, default_key("tool-a"), interval=0.5, timeout=PATIENT)
    quiet = FleetBudget(client, default_key("tool-b"), interval=0.5, timeout=PATIENT)
    await busy.reserve(10)  # tool-a's schedule now reaches the lead ahead
    reservation = await quiet.reserve(1)
    assert reservation.first == reservation.now


async def test_no_slot_is_handed_out_more_than_the_lead_ahead(client: redis.Redis) -> None:
    """The schedule never reaches further than LEAD past Redis's now: a member that went silent counts in the pace
    of slots at most that far ahead. A call that finds it full gets no slots and learns when there will be room."""
    budget = FleetBudget(client, "k", interval=0.1, timeout=PATIENT)
    first = await budget.reserve(16)
    assert first.count == round(LEAD / 0.1) + 1
    assert max(first.slots) - first.now <= LEAD * 1_000_000
    full = await budget.reserve(4)
    assert (full.count, full.slots) == (0, ())
    assert full.first - full.now > LEAD * 1_000_000 - 100_000


async def test_live_members_share_the_rate_and_a_lost_lease_is_reported(client: redis.Redis) -> None:
    """With a fleet of 4, one live member's slots are spaced for one share (4 intervals), two live members' for two;
    a member whose running lease is missing (the schedule was lost) is told so, and nothing is reserved."""
    one = FleetBudget(client, "k", 0.01, member="one", fleet_size=4, timeout=PATIENT)
    two = FleetBudget(client, "k", 0.01, member="two", fleet_size=4, timeout=PATIENT)
    alone = await one.reserve(1)
    assert alone.interval == 40_000
    await two.reserve(0)  # a heartbeat: the lease alone
    paired = await one.reserve(1)
    assert paired.interval == 20_000
    await client.delete("k:members")
    lost = await one.reserve(1, lease_end=paired.now + round(LEASE * 1_000_000))
    assert (lost.lost, lost.count) == (True, 0)


async def test_script_is_reloaded_after_script_flush(client: redis.Redis) -> None:
    """NOSCRIPT (a restart or SCRIPT FLUSH) costs one reload and the reservation still succeeds."""
    budget = FleetBudget(client, "k", interval=0.01, timeout=PATIENT)
    await budget.reserve(1)
    await budget.reserve(1)
    assert budget.round_trips == 3  # load + evalsha, then evalsha alone
    await client.script_flush()
    reservation = await budget.reserve(2)
    assert reservation.count == 2
    assert budget.round_trips == 6  # evalsha -> NOSCRIPT, load, evalsha


async def test_schedule_expires_when_idle_and_survives_a_backward_clock_step(client: redis.Redis) -> None:
    """The key carries a TTL, and a schedule absurdly far ahead (Redis's clock stepped back) restarts at now."""
    budget = FleetBudget(client, "k", interval=0.01, timeout=PATIENT)
    reservation = await budget.reserve(1)
    assert 0 < await client.pttl("k") <= 1100
    await client.set("k", str(reservation.now + 3_600_000_000))
    after = await budget.reserve(1)
    assert after.first == after.now


async def test_a_call_cancelled_at_any_step_raises_cancelled_even_as_its_reply_arrives(
    redis_server: RedisServer,
) -> None:
    """Cancelled at each successive step of the event loop, a Redis call always ends in CancelledError (until it
    has returned): redis-py's write goes through ``asyncio.wait_for``, which on Python 3.11 drops a cancellation that
    lands as the write completes, so the call would go on to its reply and a supervised loop (the lease loop) would
    never end: ``stop()`` would wait forever."""
    connection = fleet_client(redis_server.url, PATIENT)  # the limiter's own client: socket timeouts set
    budget = FleetBudget(connection, "k", interval=0.001, timeout=PATIENT)
    try:
        await budget.reserve(0)  # connected and the script loaded: every later call is one EVALSHA
        steps = 0
        async with asyncio.timeout(30):
            while True:  # one step later each time, until the call has returned before the cancellation
                call = asyncio.create_task(budget.reserve(1))
                for _ in range(steps):
                    await asyncio.sleep(0)
                if call.done():
                    await call
                    break
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
                steps += 1
        assert steps > 0
    finally:
        await connection.aclose()


# --- the limiter


async def test_lifecycle_stop_without_start_and_twice() -> None:
    """stop() is safe without start() and idempotent; a straggler's acquire() after stop() is paced locally."""
    limiter = RedisLimiter("redis://127.0.0.1:1/0", "k", 10)
    await limiter.stop()
    await limiter.stop()
    began = time.monotonic()
    await limiter.acquire()
    await limiter.acquire()
    assert time.monotonic() - began >= 1 / (10 * HEADROOM) - 0.005
    assert limiter.round_trips == 0


async def test_an_idle_member_keeps_its_lease_and_stop_ends_its_supervised_work(redis_server: RedisServer) -> None:
    """Started and never asked for a grant, a member holds its lease by heartbeats (its share stays in the
    schedule); its connect, lease and reservation work runs under its supervisor, and stop() ends all of it."""
    limiter = RedisLimiter(redis_server.url, "k", 10, fleet_size=3, timeout=PATIENT)
    await limiter.start()
    try:
        await wait_for(lambda: redis_server.command("ZCARD", "k:members").startswith(b":1"), 3, "the lease")
        trips = limiter.round_trips
        await wait_for(lambda: limiter.round_trips >= trips + 2, 3, "two heartbeats")
        work = [task for task in asyncio.all_tasks() if task.get_name().startswith("fleet-")]
        assert work
    finally:
        await limiter.stop()
    assert all(task.done() for task in work)


async def test_acquire_before_start_starts(redis_server: RedisServer) -> None:
    """A limiter used before start() starts itself rather than failing a delivery."""
    limiter = RedisLimiter(redis_server.url, "k", 10, timeout=PATIENT)
    try:
        await limiter.acquire()
        assert (limiter.mode, limiter.grants) == ("redis", 1)
    finally:
        await limiter.stop()


async def test_start_use_stop(redis_server: RedisServer) -> None:
    """A started limiter grants from Redis, counts its round trips, and stops cleanly twice."""
    limiter = RedisLimiter(redis_server.url, "k", 50, timeout=PATIENT)
    await limiter.start()
    await limiter.start()
    for _ in range(3):
        await limiter.acquire()
    assert (limiter.mode, limiter.grants, limiter.fallback_seconds) == ("redis", 3, 0.0)
    assert limiter.round_trips >= 2
    await limiter.stop()
    await limiter.stop()


async def test_one_limiter_paces_at_headroom_of_the_cap(redis_server: RedisServer) -> None:
    """Under load, one sidecar's grants stay within the cap in every sliding second and reserve several per trip."""
    cap = 20
    limiter = RedisLimiter(redis_server.url, "k", cap, timeout=PATIENT)
    await limiter.start()
    try:
        grants = await drive(limiter, workers=8, until=time.monotonic() + 2.2)
    finally:
        await limiter.stop()
    assert max_in_window(grants) <= bound(cap)
    assert len(grants) >= 0.85 * HEADROOM * cap * 2.2
    assert limiter.round_trips / len(grants) < 0.5


async def test_a_sequential_caller_reserves_several_slots_per_round_trip(redis_server: RedisServer) -> None:
    """One caller at a time (like the delivery scheduler) that keeps asking soon gets many slots per round trip."""
    cap = 50
    limiter = RedisLimiter(redis_server.url, "k", cap, timeout=PATIENT)
    await limiter.start()
    try:
        grants = await drive(limiter, workers=1, until=time.monotonic() + 1.5)
    finally:
        await limiter.stop()
    assert max_in_window(grants) <= bound(cap)
    assert len(grants) >= 0.85 * HEADROOM * cap * 1.5
    assert limiter.round_trips / len(grants) < 0.25


async def test_two_limiters_on_one_key_share_the_cap(redis_server: RedisServer) -> None:
    """Two instances sharing a key stay under the cap together in every sliding one-second window, half each."""
    cap = 20
    limiters = [RedisLimiter(redis_server.url, "shared", cap, timeout=PATIENT) for _ in range(2)]
    for limiter in limiters:
        await limiter.start()
    until = time.monotonic() + 2.5
    try:
        grants = await asyncio.gather(*(drive(limiter, workers=6, until=until) for limiter in limiters))
    finally:
        for limiter in limiters:
            await limiter.stop()
    together = grants[0] + grants[1]
    assert max_in_window(together) <= bound(cap)
    assert len(together) >= 0.85 * HEADROOM * cap * 2.5
    assert min(len(grants[0]), len(grants[1])) >= 0.35 * len(together)


async def test_an_idle_sidecar_gets_a_slot_promptly_beside_a_busy_one(redis_server: RedisServer) -> None:
    """A busy limiter holds at most one reservation ahead, so an idle one's first request waits only that long."""
    cap = 20
    busy = RedisLimiter(redis_server.url, "shared", cap, timeout=PATIENT)
    quiet = RedisLimiter(redis_server.url, "shared", cap, timeout=PATIENT)
    await busy.start()
    await quiet.start()
    try:
        load = asyncio.create_task(drive(busy, workers=20, until=time.monotonic() + 1.5))
        await wait_for(lambda: busy.grants >= 10, 5, "the busy limiter to be busy")
        waits = []
        for _ in range(3):
            began = time.monotonic()
            await quiet.acquire()
            waits.append(time.monotonic() - began)
        await load
    finally:
        await busy.stop()
        await quiet.stop()
    horizon = busy.slots_per_reservation / (cap * HEADROOM)
    assert max(waits) <= horizon + 2 / (cap * HEADROOM) + 0.1


async def test_cancelled_waiter_gives_its_slot_to_the_next(redis_server: RedisServer) -> None:
    """A waiter cancelled while waiting for its slot returns it: the next waiter uses that slot, none is wasted."""
    limiter = RedisLimiter(redis_server.url, "k", 4, timeout=PATIENT)  # one slot every ~0.28 s
    await limiter.start()
    try:
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await wait_for(lambda: limiter.round_trips >= 3, 2, "the waiter's reservation")
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        began = time.monotonic()
        await limiter.acquire()
        assert time.monotonic() - began < 1 / (4 * HEADROOM) + 0.1  # the slot held, not a new one behind it
        assert limiter.wasted_slots == 0
    finally:
        await limiter.stop()


async def test_unreachable_redis_falls_back_at_once_and_logs_once() -> None:
    """With nothing listening, the limiter falls back at once with one log line, then paces on its own share, and
    only from ``local_from`` (lease + lead + tolerance + one local interval after start: a dead predecessor may
    still count in the schedule)."""
    url = f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0"
    limiter = RedisLimiter(url, "k", 40, fleet_size=2)
    began = time.monotonic()
    await limiter.start()
    try:
        with capture_logs() as logs:
            await wait_for(lambda: limiter.mode == "fallback", 0.5, "the fallback")
            times = []
            for _ in range(6):
                await limiter.acquire()
                times.append(time.monotonic())
    finally:
        await limiter.stop()
    share = 1 / local_rate(40, 2)
    assert times[0] >= began + LEASE + LEAD + limiter.tolerance + share
    assert limiter.fallback_seconds > 0
    # Paced at the member's share (55 ms), not at the whole cap (28 ms). The margin is the test's own clock reading,
    # taken after acquire() returns: a pause of the process in between (3.8 ms seen under CI load) shortens a gap.
    assert min(b - a for a, b in pairwise(times)) >= share * 0.8
    events = [entry for entry in logs if entry["event"] == "ratelimit_fallback"]
    assert len(events) == 1
    assert events[0]["redis"].startswith("redis://***@127.0.0.1:")
    assert "s3cret-pass" not in repr(logs)


async def test_silent_server_at_start_means_fallback_after_one_connect_timeout() -> None:
    """A server that accepts but never answers sends the limiter to the fallback after the connect timeout."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0", "k", 50, timeout=0.2, connect_timeout=0.3)
    try:
        with capture_logs() as logs:
            began = time.monotonic()
            await limiter.start()
            await wait_for(lambda: limiter.mode == "fallback", 1.0, "the fallback")
            elapsed = time.monotonic() - began
            await limiter.acquire()
    finally:
        await limiter.stop()
        server.close()
        await server.wait_closed()
    assert 0.3 <= elapsed < 0.3 + 0.15
    assert [entry["event"] for entry in logs] == ["ratelimit_fallback"]


async def test_a_server_that_is_not_redis_means_fallback_not_a_crash() -> None:
    """A server answering +OK to everything (not Redis, or not our script) sends delivery to the fallback."""

    async def yes_man(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            writer.write(b"+OK\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(yes_man, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0", "k", 50, timeout=PATIENT)
    try:
        with capture_logs() as logs:
            await limiter.acquire()
    finally:
        await limiter.stop()
        server.close()
        await server.wait_closed()
    assert limiter.mode == "fallback"
    assert "unexpected reply" in logs[0]["reason"]


async def test_redis_that_stops_answering_costs_one_call_timeout_then_waits_out_the_share(
    redis_server: RedisServer,
) -> None:
    """A connected Redis that goes quiet (CLIENT PAUSE) is given up after one 200 ms call; the member then paces on
    its own share only once whatever that call might have done in Redis is over: its lease (0.6 s) and the slots
    handed out meanwhile (0.5 s ahead, 0.1 s late), one local interval on."""
    limiter = RedisLimiter(redis_server.url, "k", 50, fleet_size=3, timeout=0.2)
    await limiter.start()
    try:
        await limiter.acquire()
        await wait_for(lambda: limiter.round_trips >= 3, 2, "a heartbeat")  # nothing held: the next call reserves
        assert limiter.mode == "redis"
        redis_server.command("CLIENT", "PAUSE", "3000", "ALL")
        with capture_logs() as logs:
            began = time.monotonic()
            await limiter.acquire()
            elapsed = time.monotonic() - began
    finally:
        await limiter.stop()
    assert limiter.mode == "fallback"
    assert "TimeoutError" in logs[0]["reason"]
    assert (
        elapsed >= 0.2 + LEASE + LEAD + limiter.tolerance + 1 / local_rate(50, 3) - 0.2
    )  # the call sent <= 0.2 s before
    assert elapsed < 0.2 + LEASE + LEAD + limiter.tolerance + 1 / local_rate(50, 3) + 0.3


async def test_fallback_when_redis_dies_and_recovery_when_it_returns(redis_server: RedisServer) -> None:
    """Redis killed: local pacing at the member's share; restarted empty: the limiter rejoins the schedule by
    itself."""
    limiter = RedisLimiter(redis_server.url, "k", 40, fleet_size=4, probe_interval=0.1, timeout=PATIENT)
    await limiter.start()
    try:
        with capture_logs() as logs:
            await limiter.acquire()
            assert limiter.mode == "redis"
            redis_server.kill()
            await wait_for_mode(limiter, "fallback")
            times = []
            for _ in range(4):
                await limiter.acquire()
                times.append(time.monotonic())
            # At the member's share (111 ms), not the whole cap (28 ms); the margin as in the test above.
            assert min(b - a for a, b in pairwise(times)) >= 0.8 / local_rate(40, 4)
            redis_server.start()
            await wait_for_mode(limiter, "redis")
            spent = limiter.fallback_seconds
            await limiter.acquire()
            assert limiter.fallback_seconds == spent
    finally:
        await limiter.stop()
    assert [entry["event"] for entry in logs] == ["ratelimit_fallback", "ratelimit_recovered"]
    assert limiter.outages == 1


async def wait_for_mode(limiter: RedisLimiter, mode: str, timeout: float = 8.0) -> None:
    """Acquire in a loop until the limiter reports ``mode``."""
    deadline = time.monotonic() + timeout
    while limiter.mode != mode:
        if time.monotonic() > deadline:
            pytest.fail(f"limiter still {limiter.mode!r}, not {mode!r}, after {timeout} s")
        await limiter.acquire()


async def test_a_silent_member_keeps_its_share_out_of_the_schedule(redis_server: RedisServer) -> None:
    """Fleet of 4 declared: one live member gets a quarter of the rate; a second live member (its lease renewed by
    heartbeats, idle) makes it half; once that member stops renewing, its share stays out of the schedule only until
    its lease and the lead have passed."""
    one = RedisLimiter(redis_server.url, "k", 40, fleet_size=4, timeout=PATIENT)
    two = RedisLimiter(redis_server.url, "k", 40, fleet_size=4, timeout=PATIENT)
    await one.start()
    try:
        alone = await drive(one, workers=4, until=time.monotonic() + 1.0)
        await two.start()
        await wait_for(lambda: two.round_trips >= 2, 2, "the second member's lease")
        paired = await drive(one, workers=4, until=time.monotonic() + 1.0)
    finally:
        await two.stop()
        await one.stop()
    share = HEADROOM * 40 / 4
    assert max_in_window(alone) <= math.ceil(share * 1.1) + 1
    assert max_in_window(paired) >= 1.5 * share


async def test_a_lost_schedule_sends_the_member_to_its_share_after_its_old_share_is_over(
    redis_server: RedisServer,
) -> None:
    """Redis loses the schedule (FLUSHALL, as after a restart) while a member's lease runs: its next call finds the
    lease missing, does nothing in Redis, and the member paces alone only after its old share is surely over."""
    limiter = RedisLimiter(redis_server.url, "k", 40, fleet_size=2, probe_interval=0.1, timeout=PATIENT)
    await limiter.start()
    try:
        with capture_logs() as logs:
            await limiter.acquire()
            redis_server.command("FLUSHALL")
            flushed = time.monotonic()
            await limiter.acquire()
            first_after = time.monotonic()
            await limiter.acquire()
    finally:
        await limiter.stop()
    assert [entry["event"] for entry in logs] == ["ratelimit_fallback", "ratelimit_recovered"]
    assert "lost the fleet's schedule" in logs[0]["reason"]
    assert limiter.mode == "redis"
    assert first_after - flushed >= LEASE + LEAD  # the last lease renewal was sent at most PATIENT before the flush


async def test_rediss_with_a_password_works(tmp_path: Path) -> None:
    """TLS (``rediss://``, the CA given as a URL query parameter) and a password work through the URL alone."""
    with running_redis(tmp_path, password="tls-secret-word", tls=True) as server:
        limiter = RedisLimiter(server.url, "k", 20, timeout=PATIENT)
        await limiter.start()
        try:
            with capture_logs() as logs:
                await limiter.acquire()
                await limiter.acquire()
        finally:
            await limiter.stop()
    assert (limiter.mode, limiter.grants, logs) == ("redis", 2, [])


async def test_password_url_works_and_a_wrong_password_is_never_logged(tmp_path: Path) -> None:
    """A password in the URL authenticates; a wrong one falls back with the URL redacted in the log."""
    with running_redis(tmp_path, password="right-horse-battery") as server:
        good = RedisLimiter(server.url, "k", 20, timeout=PATIENT)
        bad = RedisLimiter(f"redis://:wrong-staple@127.0.0.1:{server.port}/0", "k", 20, timeout=PATIENT)
        await good.start()
        await bad.start()
        try:
            with capture_logs() as logs:
                await good.acquire()
                await bad.acquire()
        finally:
            await good.stop()
            await bad.stop()
    assert (good.mode, bad.mode) == ("redis", "fallback")
    assert "wrong-staple" not in repr(logs)
    assert "right-horse-battery" not in repr(logs)
    assert [entry["event"] for entry in logs] == ["ratelimit_fallback"]
