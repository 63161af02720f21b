"""Graceful shutdown in-process: drain what is deliverable, never wait out the grace period for parked keys."""

from __future__ import annotations

import time

from sidecar._proto import sidecar_pb2 as pb
from tests.conftest import SidecarFactory
from tests.support.harness import Collectors


async def test_stop_does_not_wait_for_a_parked_key(sidecar_factory: SidecarFactory, collectors: Collectors) -> None:
    """With only a revoked key's events left, stop() returns long before the grace period and keeps them spooled."""
    collectors.us.faults.revoked_write_keys = {"wk-revoked"}
    running = await sidecar_factory(SIDECAR_FLUSH_INTERVAL="10ms")
    for i in range(3):
        await running.stub.Track(pb.TrackRequest(write_key="wk-revoked", user_id=f"u{i}", event="Report Generated"))
    await running.stub.Track(pb.TrackRequest(write_key="wk-fine", user_id="u", event="Report Generated"))
    flushed = await running.stub.Flush(pb.FlushRequest(), timeout=10)
    assert flushed.parked == 3 and flushed.delivered == 1
    started = time.monotonic()
    await running.app.stop(grace=20)
    assert time.monotonic() - started < 3
    assert running.app.spool.pending_events == 3


async def test_stop_drains_ready_batches_before_exiting(
    sidecar_factory: SidecarFactory, collectors: Collectors
) -> None:
    """Events accepted just before stop() are delivered during the drain, not left behind."""
    running = await sidecar_factory(SIDECAR_FLUSH_INTERVAL="30s")
    replies = [
        await running.stub.Track(pb.TrackRequest(write_key="wk", user_id=f"u{i}", event="Report Generated"))
        for i in range(20)
    ]
    await running.app.stop(grace=10)
    assert sorted(collectors.us.store.message_ids()) == sorted(r.message_id for r in replies)
    assert running.app.spool.pending_events == 0
