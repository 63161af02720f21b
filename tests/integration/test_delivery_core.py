"""The delivery shell with a real SQLite spool and a real collector, under faults injected in the units it runs:
a sender that raises and a spool read that raises. Delivery goes on, nothing is lost, and the dispatcher reports why it
cannot go on (health's NOT_SERVING) only while it cannot."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sidecar._proto import sidecar_pb2 as pb
from sidecar.backoff import Backoff
from sidecar.collector.server import Collector
from sidecar.delivery.dispatcher import DeliveryPolicy, Dispatcher
from sidecar.model import Batch, Event, Region, ShardKey, SpooledEvent
from sidecar.send.auth import Authorization, BasicAuthenticator
from sidecar.send.classify import Outcome
from sidecar.send.http import HttpSender, envelope_overhead
from sidecar.send.ratelimit import PacedLimiter
from sidecar.spool import Spool, SqliteStore
from tests.support.harness import TEST_ENV, Collectors, free_port, start_sidecar

POLICY = DeliveryPolicy(
    flush_interval=0.05,
    batch_max_bytes=475_000,
    batch_max_events=2500,
    max_in_flight=8,
    max_event_age=3600.0,
    parked_retry_interval=60.0,
    parked_dead_letter_after=3600.0,
    backoff=Backoff(0.01, 0.05),
)


class RaisingSender(HttpSender):
    """The real HTTP sender, raising ``failures`` times first (a bug in a sender)."""

    failures = 0

    async def send(self, batch: Batch, authorization: Authorization) -> Outcome:
        """Raise while failures remain, else send."""
        if self.failures > 0:
            self.failures -= 1
            raise ZeroDivisionError("a bug in the sender")
        return await super().send(batch, authorization)


class FlakySpool(Spool):
    """A real spool whose per-key read raises ``failures`` times (a read error from SQLite)."""

    failures = 0

    async def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent]:
        """Raise while failures remain, else read."""
        if self.failures > 0:
            self.failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return await super().read(key, after_seq, max_bytes, max_events)


def event(index: int, key: str) -> Event:
    """A valid track event of ``key``."""
    payload = f'{{"type":"track","event":"Core","userId":"u{index}","messageId":"core-{index}"}}'.encode()
    return Event(key, Region.US, f"core-{index}", payload, time.time())


async def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    """Poll ``condition`` on each loop turn until it holds, or fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("fault", ["sender", "spool_read"])
async def test_delivery_goes_on_after_a_unit_raises(collector: Collector, tmp_path: Path, fault: str) -> None:
    """The failing unit is logged with its traceback, reported while it fails, cleared once it works; every event
    arrives and Flush returns."""
    spool = FlakySpool(SqliteStore(tmp_path), 2**30)
    sender = RaisingSender(dict.fromkeys(Region, collector.url), BasicAuthenticator(), 5.0)
    sender.failures = 3 if fault == "sender" else 0
    spool.failures = 3 if fault == "spool_read" else 0
    health_changes: list[dict[str, str]] = []
    dispatcher: Dispatcher | None = None

    def on_change() -> None:
        assert dispatcher is not None
        health_changes.append(dispatcher.problems)

    dispatcher = Dispatcher(
        spool, sender, POLICY, envelope_overhead, limiter=PacedLimiter(1000), on_health_change=on_change
    )
    await spool.start()
    await sender.start()
    try:
        await spool.append([event(i, f"wk-{i % 3}") for i in range(30)])
        with capture_logs() as logs:
            await dispatcher.start()
            async with asyncio.timeout(20):
                result = await dispatcher.flush()
        assert result.delivered == 30
        assert sorted(collector.store.message_ids()) == sorted(f"core-{i}" for i in range(30))
        await wait_for(lambda: not dispatcher.problems, 5)
    finally:
        await dispatcher.stop()
        await sender.stop()
        await spool.stop()
    unit = "send" if fault == "sender" else "spool_read"
    assert health_changes[0] == {unit: "ZeroDivisionError" if fault == "sender" else "OperationalError"}
    assert health_changes[-1] == {}
    event_name = "send_failed" if fault == "sender" else "spool_read_failed"
    errors = [e for e in logs if e["event"] == event_name and e["log_level"] == "error"]
    assert len(errors) == 1 and errors[0].get("exc_info")


async def test_a_key_whose_every_event_is_refused_takes_at_most_2n_minus_1_requests(
    collectors: Collectors, tmp_path: Path
) -> None:
    """200 events of one key, each one refused 400 by Segment: halving isolates each bad event without sending any
    refused part whole again, so at most 2 x 200 - 1 requests, and all 200 are dead-lettered."""
    ids = [f"refused-{i}" for i in range(200)]
    collectors.us.faults.reject_message_ids = set(ids)
    running = await start_sidecar(collectors, tmp_path / "spool", {"SIDECAR_MAX_REQUESTS_PER_SECOND": "1000"})
    try:
        request = pb.BatchRequest(
            events=[
                pb.BatchEvent(track=pb.TrackRequest(write_key="wk-refused", user_id="u", event="Refused", message_id=i))
                for i in ids
            ]
        )
        assert (await running.stub.Batch(request)).accepted == 200
        flushed = await running.stub.Flush(pb.FlushRequest(), timeout=60)
    finally:
        await running.close()
    assert flushed.dead_lettered == 200
    assert len(collectors.us.store.requests) <= 2 * 200 - 1, len(collectors.us.store.requests)


def test_a_batch_limit_the_longest_write_key_fills_is_exit_2_naming_the_variable() -> None:
    """SIDECAR_BATCH_MAX_BYTES=300 could never carry an event of a 1,024-character write key: the process refuses to
    start (exit 2) and names the variable, rather than spinning on such an event later."""
    env = {
        **TEST_ENV,
        "PATH": "/usr/bin:/bin",
        "SIDECAR_SPOOL": "memory",
        "SIDECAR_LISTEN": f"127.0.0.1:{free_port()}",
        "SIDECAR_METRICS_LISTEN": "off",
        "SIDECAR_BATCH_MAX_BYTES": "300",
    }
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "SIDECAR_BATCH_MAX_BYTES" in result.stderr
