"""The fleet's cap under single faults, with real processes: three sidecars, a real ``redis-server``, and the local
collector counting requests per sliding one-second window where they arrive.

The promise (docs/fleet.md, "The bound under faults"): at most the cap in any one-second window in steady state, and
at most the cap + 20% during any single fault. Each test drives the fleet past the cap, causes one fault, and checks
the busiest window before, during and after it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sidecar.collector.server import Collector
from sidecar.collector.store import max_requests_in_window
from tests.fleet.fleet import FleetMember, fleet
from tests.fleet.proxy import CuttableProxy
from tests.fleet.redis_server import RedisServer

pytestmark = pytest.mark.slow

CAP = 20
"""The fleet's cap: low enough that three sidecars are far past it within a second."""
FLEET = 3
FAULT_ALLOWED = int(1.2 * CAP)
"""The promise during a single fault: at most 24 requests in any one-second window at a cap of 20."""
EVENTS_PER_REQUEST = 5


def fault_env() -> dict[str, str]:
    """The settings every member shares: cap 20 for the fleet of 3, small requests so that the cap binds."""
    return {
        "SIDECAR_INTEGRATION_NAME": "fleet-faults",
        "SIDECAR_MAX_REQUESTS_PER_SECOND": str(CAP),
        "SIDECAR_FLEET_SIZE": str(FLEET),
        "SIDECAR_BATCH_MAX_EVENTS": str(EVENTS_PER_REQUEST),
    }


async def load(members: list[FleetMember], seconds: float) -> set[str]:
    """Enough events for ``seconds`` of the fleet's requests at the cap, from every member at once (they compete)."""
    per_member = int(seconds * CAP / len(members)) * EVENTS_PER_REQUEST
    sent = await asyncio.gather(*(member.send(per_member, f"load{seconds}") for member in members))
    return {message_id for ids in sent for message_id in ids}


def windows(collector: Collector, fault_begins: float, fault_ends: float) -> tuple[int, int, int]:
    """The busiest one-second window before the fault, from its beginning to 3 s after its end, and after that."""
    starts = [request.started_at for request in collector.store.requests]
    before = max_requests_in_window(at for at in starts if at < fault_begins)
    during = max_requests_in_window(at for at in starts if fault_begins - 1 <= at < fault_ends + 3)
    after = max_requests_in_window(at for at in starts if at >= fault_ends + 3)
    return before, during, after


async def test_redis_killed_and_restarted_under_load_stays_within_the_fault_bound(
    redis_server: RedisServer, collector: Collector, tmp_path: Path
) -> None:
    """Redis SIGKILLed and restarted at once (empty) under load: the members must not all restart from an empty
    schedule while the old one's slots are still in use. At most the cap before and after, cap + 20% around it."""
    async with fleet(FLEET, collector, redis_server.url, tmp_path, fault_env()) as members:
        expected = await load(members, 8.0)
        await collector.store.wait_until(lambda store: len(store.requests) >= 2 * CAP, timeout=20)
        fault_begins = time.monotonic()
        redis_server.kill()
        redis_server.start()
        fault_ends = time.monotonic()
        await collector.store.wait_for_events(len(expected), timeout=60)
    before, during, after = windows(collector, fault_begins, fault_ends)
    print(f"Redis restart: busiest window {before} before, {during} around the fault, {after} after (cap {CAP})")
    assert during <= FAULT_ALLOWED, f"{during} requests in one second around the restart (allowed {FAULT_ALLOWED})"
    assert before <= CAP, f"{before} requests in one second in steady state"
    assert after <= CAP, f"{after} requests in one second in steady state"


async def test_one_member_cut_off_from_redis_keeps_only_its_share(
    redis_server: RedisServer, collector: Collector, tmp_path: Path
) -> None:
    """One member's connection to Redis is cut for 3 s (its proxy resets every connection and refuses new ones) while
    the other two reach Redis: it paces at its own share only, and the others stop counting on that share once its
    lease could have ended. At most cap + 20% during the cut, the cap before and after."""
    proxy = CuttableProxy(redis_server.port)
    await proxy.mend()
    urls = [proxy.url, redis_server.url, redis_server.url]
    try:
        async with fleet(FLEET, collector, redis_server.url, tmp_path, fault_env(), urls=urls) as members:
            expected = await load(members, 10.0)
            await collector.store.wait_until(lambda store: len(store.requests) >= 2 * CAP, timeout=20)
            fault_begins = time.monotonic()
            await proxy.cut()
            await collector.store.wait_until(lambda store: store.requests[-1].started_at > fault_begins + 3, 20)
            await proxy.mend()
            fault_ends = time.monotonic()
            await collector.store.wait_for_events(len(expected), timeout=60)
            cut_log = members[0].process.read_log()
    finally:
        await proxy.cut()
    assert "ratelimit_fallback" in cut_log
    cut_off = [r.started_at for r in collector.store.requests if r.write_key == members[0].write_key]
    assert any(fault_begins + 2 < at < fault_ends for at in cut_off), "the cut-off member stopped delivering"
    before, during, after = windows(collector, fault_begins, fault_ends)
    print(f"one member cut off: busiest window {before} before, {during} during the cut, {after} after (cap {CAP})")
    assert during <= FAULT_ALLOWED, f"{during} requests in one second during the cut (allowed {FAULT_ALLOWED})"
    assert before <= CAP, f"{before} requests in one second in steady state"
    assert after <= CAP, f"{after} requests in one second in steady state"
