"""Fault suite: a real sidecar process against a real collector made to misbehave, counted by message id.

Each scenario asserts: zero acknowledged events lost, duplicates only as identical events with the same messageId,
and the request rate seen by the collector never above the cap.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time

import grpc
import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.collector.server import Collector
from sidecar.collector.store import Store
from sidecar.model import write_key_hash
from tests.fault.conftest import ProcessFactory, Traffic, assert_no_loss_and_clean_duplicates, wait_delivered

pytestmark = pytest.mark.slow
CAP = 50
KEYS = ["wk-fault-a", "wk-fault-b", "wk-fault-c", "wk-fault-d"]


async def test_flaky_slow_and_throttling_server(collector: Collector, sidecar_process: ProcessFactory) -> None:
    """30% 500/503, bursts of 429 with Retry-After, resets and a slow server: nothing acknowledged is lost."""
    process = sidecar_process()
    process.start()
    await process.wait_ready()
    collector.faults.update({"error_rate": 0.3, "reset_rate": 0.1, "delay": 0.05, "retry_after": 1})
    traffic = Traffic(process.address, KEYS)
    sender = asyncio.create_task(traffic.run(40, pause=0.05))
    await collector.store.wait_until(lambda store: len(store.requests) > 0, timeout=10)
    collector.faults.throttle_next = 10
    await sender

    def every_fault_seen(store: Store) -> bool:
        seen = store.statuses()
        return seen.get(500, 0) + seen.get(503, 0) > 0 and seen.get(429, 0) > 0 and seen.get(0, 0) > 0

    await collector.store.wait_until(every_fault_seen, timeout=30)  # each kind of fault has hit delivery
    statuses = collector.store.statuses()
    collector.faults.clear()
    assert len(traffic.acknowledged) == 40 * 50
    await wait_delivered(collector, traffic.acknowledged, timeout=30)
    assert_no_loss_and_clean_duplicates(collector, traffic.acknowledged, CAP)
    assert statuses.get(500, 0) + statuses.get(503, 0) > 0 and statuses.get(429, 0) > 0 and statuses.get(0, 0) > 0


async def test_sigkill_at_random_moments_loses_nothing(collector: Collector, sidecar_process: ProcessFactory) -> None:
    """The sidecar is SIGKILLed three times while traffic flows and restarted on the same spool: every acknowledged
    event still arrives."""
    rng = random.Random(7)
    collector.faults.update({"delay": 0.02, "error_rate": 0.2})
    stop = asyncio.Event()
    first = sidecar_process()
    first.start()
    await first.wait_ready()
    traffic = Traffic(first.address, KEYS, batch_size=40)
    sender = asyncio.create_task(traffic.run_until(stop, pause=0.01))
    current = first
    for _ in range(3):
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        current.kill()
        current = sidecar_process()
        current.start()
        await current.wait_ready()
    await asyncio.sleep(0.5)
    stop.set()
    await sender
    collector.faults.clear()
    assert len(traffic.acknowledged) > 500
    await wait_delivered(collector, traffic.acknowledged, timeout=40)
    assert_no_loss_and_clean_duplicates(collector, traffic.acknowledged, CAP)
    assert "spool_recovered" in current.read_log() or "spool_recovered" in first.read_log() + current.read_log()


async def test_a_refused_event_is_isolated_and_dead_lettered(
    collector: Collector, sidecar_process: ProcessFactory
) -> None:
    """A batch holding an event the collector refuses (400) is halved until every other event arrives; the offender
    becomes a dead letter with Segment's answer."""
    process = sidecar_process(SIDECAR_FLUSH_INTERVAL="300ms")
    collector.faults.reject_message_ids = {"m-0000017"}
    process.start()
    await process.wait_ready()
    traffic = Traffic(process.address, ["wk-split"], batch_size=60)
    await traffic.run(1)
    others = traffic.acknowledged - {"m-0000017"}
    await wait_delivered(collector, others, timeout=20)
    async with grpc.aio.insecure_channel(process.address) as channel:
        flushed = await pb_grpc.SidecarServiceStub(channel).Flush(pb.FlushRequest(), timeout=20)
    assert flushed.dead_lettered == 1
    assert "m-0000017" not in collector.store.message_ids()
    assert_no_loss_and_clean_duplicates(collector, others, CAP)
    listing = subprocess.run(
        [
            sys.executable,
            "-m",
            "sidecar",
            "dead-letters",
            "list",
            "--format",
            "json",
            "--spool-dir",
            process.env["SIDECAR_SPOOL_DIR"],
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    rows = json.loads(listing.stdout)
    assert [row["message_id"] for row in rows] == ["m-0000017"]
    assert "invalid_event" in rows[0]["response"] and rows[0]["reason"] == "Segment refused the event"


async def test_a_revoked_key_is_parked_while_healthy_keys_deliver_on_time(
    collector: Collector, sidecar_process: ProcessFactory
) -> None:
    """A 401 write key is parked (log line, Flush report) and does not delay the healthy keys."""
    process = sidecar_process(SIDECAR_PARKED_RETRY_INTERVAL="30s")
    collector.faults.revoked_write_keys = {"wk-revoked"}
    process.start()
    await process.wait_ready()
    traffic = Traffic(process.address, ["wk-revoked", "wk-healthy-1", "wk-healthy-2"], batch_size=30)
    started = time.monotonic()
    await traffic.run(5)
    healthy = {m for m in traffic.acknowledged if int(m[2:]) % 3 != 0}
    await wait_delivered(collector, healthy, timeout=10)
    assert time.monotonic() - started < 0.1 + 2.0 + 1.0, "healthy keys waited on the revoked one"
    async with grpc.aio.insecure_channel(process.address) as channel:
        flushed = await pb_grpc.SidecarServiceStub(channel).Flush(pb.FlushRequest(), timeout=10)
    assert list(flushed.parked_write_key_hashes) == [write_key_hash("wk-revoked")]
    assert flushed.parked == 50
    log = process.read_log()
    assert "write_key_parked" in log and write_key_hash("wk-revoked") in log and "wk-revoked" not in log
    assert collector.store.max_requests_in_window(1.0) <= CAP


async def test_sigterm_under_load_drains_within_grace_and_keeps_the_rest(
    collector: Collector, sidecar_process: ProcessFactory
) -> None:
    """SIGTERM while a slow server holds a backlog: exit 0 within the grace period; after a restart everything
    acknowledged arrives."""
    collector.faults.update({"delay": 0.3})
    process = sidecar_process(
        SIDECAR_SHUTDOWN_GRACE="3s", SIDECAR_MAX_REQUESTS_PER_SECOND="5", SIDECAR_BATCH_MAX_EVENTS="20"
    )
    process.start()
    await process.wait_ready()
    traffic = Traffic(process.address, KEYS)
    await traffic.run(20)
    signalled = time.monotonic()
    process.terminate()
    assert await process.wait_exit(timeout=10) == 0
    assert time.monotonic() - signalled < 3 + 2.5
    log = process.read_log()
    assert "sidecar_stopped" in log
    summary = json.loads(next(line for line in log.splitlines() if "sidecar_stopped" in line))
    assert summary["left_in_spool"] > 0, "the backlog should outlast a 3 s grace at 5 requests/s"
    collector.faults.clear()
    restarted = sidecar_process()
    restarted.start()
    await restarted.wait_ready()
    await wait_delivered(collector, traffic.acknowledged, timeout=30)
    assert_no_loss_and_clean_duplicates(collector, traffic.acknowledged, CAP)


async def test_new_calls_during_shutdown_get_unavailable(collector: Collector, sidecar_process: ProcessFactory) -> None:
    """While draining, calls are refused with UNAVAILABLE (retryable), never accepted and dropped."""
    collector.faults.update({"down": True})
    process = sidecar_process(SIDECAR_SHUTDOWN_GRACE="3s")
    process.start()
    await process.wait_ready()
    traffic = Traffic(process.address, ["wk-drain"])
    await traffic.run(2)
    process.terminate()
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)
        codes = set()
        for _ in range(100):
            try:
                await stub.Track(
                    pb.TrackRequest(write_key="wk-drain", user_id="u", event="Report Generated"), timeout=1
                )
            except grpc.aio.AioRpcError as error:
                codes.add(error.code())
                if error.code() == grpc.StatusCode.UNAVAILABLE:
                    break
            await asyncio.sleep(0.02)
    assert grpc.StatusCode.UNAVAILABLE in codes
    assert await process.wait_exit(timeout=10) == 0
