"""Three sidecar processes share one cap through a real Redis, measured at one local collector."""

from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path

import orjson
import pytest

from sidecar.collector.server import Collector
from sidecar.collector.store import max_requests_in_window
from sidecar.send.fleet import LEAD, bound, default_key, local_rate
from sidecar.send.ratelimit import HEADROOM
from tests.fleet.fleet import fleet, shares, started_between
from tests.fleet.redis_server import RedisServer

pytestmark = pytest.mark.slow

CAP = 20
"""The fleet's cap in these tests: low enough to drive three sidecars far past it within seconds."""

EVENTS_PER_REQUEST = 5


def logged_at(log: str, event: str) -> float:
    """When a JSON log line with ``event`` was written, on this process's monotonic clock (same host, same UTC)."""
    for line in log.splitlines():
        if line.startswith("{") and orjson.loads(line).get("event") == event:
            stamp = datetime.datetime.fromisoformat(orjson.loads(line)["timestamp"].replace("Z", "+00:00"))
            return stamp.timestamp() - time.time() + time.monotonic()
    raise AssertionError(f"no {event} in the log:\n{log[-2000:]}")


def fleet_env(fleet_size: int) -> dict[str, str]:
    """The settings every sidecar of the fleet shares."""
    return {
        "SIDECAR_INTEGRATION_NAME": "fleet-test",
        "SIDECAR_MAX_REQUESTS_PER_SECOND": str(CAP),
        "SIDECAR_FLEET_SIZE": str(fleet_size),
        "SIDECAR_BATCH_MAX_EVENTS": str(EVENTS_PER_REQUEST),
    }


async def test_three_sidecars_share_the_cap_fairly(
    redis_server: RedisServer, collector: Collector, tmp_path: Path
) -> None:
    """Driven far past the cap, three sidecars together stay within the bound, deliver everything, ~1/3 each."""
    per_sidecar = 30 * EVENTS_PER_REQUEST  # 90 requests in all: 5 s at 90% of a cap of 20
    async with fleet(3, collector, redis_server.url, tmp_path, fleet_env(3)) as members:
        sent = await asyncio.gather(*(member.send(per_sidecar, "shared") for member in members))
        expected = {message_id for ids in sent for message_id in ids}
        await collector.store.wait_for_events(len(expected), timeout=30)
        for member in members:
            assert "ratelimit_fallback" not in member.process.read_log()
    requests = collector.store.requests
    assert {event["messageId"] for event in collector.store.events()} == expected
    assert all(request.accepted for request in requests)
    busiest = collector.store.max_requests_in_window(1.0)
    assert busiest <= bound(CAP), f"{busiest} requests in one second, bound {bound(CAP)}"
    assert busiest >= 0.7 * HEADROOM * CAP, f"only {busiest} requests/s: the fleet was not driven to the cap"
    # Fairness while all three compete: the first 60% of the requests, before any sidecar runs out of work.
    ordered = sorted(requests, key=lambda request: request.started_at)
    contended = ordered[: int(0.6 * len(ordered))]
    assert min(shares(contended, members)) >= 0.2, shares(contended, members)


async def test_redis_outage_falls_back_and_recovers(
    redis_server: RedisServer, collector: Collector, tmp_path: Path
) -> None:
    """Redis killed mid-run: every call still succeeds, delivery goes on at each member's share, and the fleet
    returns to the shared budget once Redis is back (empty). Three of six declared members run: on Redis as without
    it, the three get three shares of six (the other three could be pacing on their own)."""
    fleet_size = 6
    fallback_total = 3 * local_rate(CAP, fleet_size)
    shared_total = HEADROOM * CAP * 3 / fleet_size
    per_sidecar = 45 * EVENTS_PER_REQUEST
    async with fleet(3, collector, redis_server.url, tmp_path, fleet_env(fleet_size)) as members:
        sent = await asyncio.gather(*(member.send(per_sidecar, "before") for member in members))
        await collector.store.wait_until(lambda store: len(store.requests) >= 25, timeout=15)
        killed_at = time.monotonic()
        redis_server.kill()
        # Calls made while Redis is down are accepted as usual.
        sent += await asyncio.gather(*(member.send(10, "during") for member in members))
        at_kill = len(collector.store.requests)
        # Slots reserved before the kill run out within ~0.7 s; then about three seconds at the fallback rate.
        await collector.store.wait_until(lambda store: len(store.requests) >= at_kill + 35, timeout=15)
        restarted_at = time.monotonic()
        redis_server.start()
        expected = {message_id for ids in sent for message_id in ids}
        await collector.store.wait_for_events(len(expected), timeout=40)
        logs = [member.process.read_log() for member in members]
        key_back = redis_server.command("EXISTS", default_key("fleet-test"))
    requests = collector.store.requests
    assert {event["messageId"] for event in collector.store.events()} == expected
    # During the outage, once the slots reserved before it are used up, the fleet paces at 3 x cap / fleet size.
    outage = started_between(requests, killed_at + 1.0, restarted_at)
    outage_rate = len(outage) / (restarted_at - killed_at - 1.0)
    assert 0.6 * fallback_total <= outage_rate <= 1.25 * fallback_total, outage_rate
    # Back on the shared budget once the last sidecar has rejoined and the slots handed out at the pace of fewer
    # members (at most the lead ahead) have passed.
    back = max(logged_at(log, "ratelimit_recovered") for log in logs) + LEAD
    after = started_between(requests, back + 0.2, back + 1.2)
    assert len(after) >= 0.75 * shared_total, (len(after), outage_rate)
    assert key_back.startswith(b":1")
    for log in logs:
        assert log.count("ratelimit_fallback") == 1
        assert log.count("ratelimit_recovered") == 1
    busiest = max_requests_in_window(request.started_at for request in requests)
    assert busiest <= bound(CAP), f"{busiest} requests in one second, bound {bound(CAP)}"
