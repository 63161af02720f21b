"""Durability through the HTTP intake: a 200 means spooled. The sidecar is SIGKILLed right after the Python
library's flush() returned (every request answered 200), then restarted: every event still arrives, once.

The first sidecar's Segment endpoint is a closed port, so nothing can leave before the kill: every event that arrives
later came out of the spool the second sidecar recovered.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from segment.analytics.client import Client

from sidecar.collector.server import Collector
from tests.support.harness import TEST_ENV, SidecarProcess, free_port


def send(host: str, write_key: str, count: int, errors: list[Any]) -> set[str]:
    """Send ``count`` track events and flush; the flush returns once every request was answered."""
    client = Client(write_key, host=host, on_error=lambda error, batch: errors.append(error))
    ids = set()
    for i in range(count):
        ids.add(f"durable-{i}")
        client.track(user_id=f"user-{i}", event="Email Opened", properties={"i": i}, message_id=f"durable-{i}")
    client.flush()
    client.shutdown()
    return ids


async def test_sigkill_after_flush_loses_nothing(tmp_path: Path, collector: Collector) -> None:
    """2,000 events acknowledged over HTTP survive a SIGKILL and arrive once after the restart."""
    http_port = free_port()
    env = {
        **TEST_ENV,
        "SIDECAR_SPOOL_DIR": str(tmp_path / "spool"),
        "SIDECAR_HTTP_LISTEN": f"127.0.0.1:{http_port}",
        "SIDECAR_ENDPOINT_US": f"http://127.0.0.1:{free_port()}",  # nobody listens: nothing leaves before the kill
    }
    first = SidecarProcess(env, free_port(), tmp_path / "first.log")
    second = SidecarProcess({**env, "SIDECAR_ENDPOINT_US": collector.url}, free_port(), tmp_path / "second.log")
    try:
        first.start()
        await first.wait_ready()
        # The HTTP intake starts before gRPC, so a SERVING sidecar already accepts connections on it.
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", http_port), 5)
        writer.close()
        errors: list[Any] = []
        ids = await asyncio.to_thread(send, f"http://127.0.0.1:{http_port}", "wk-durable", 2000, errors)
        assert not errors
        first.kill()
        second.start()
        await second.wait_ready()
        await collector.store.wait_for_events(2000, timeout=30, write_key="wk-durable")
    finally:
        first.ensure_stopped()
        second.ensure_stopped()
    arrived = collector.store.message_ids("wk-durable")
    assert sorted(arrived) == sorted(ids)
