"""A backlog larger than memory: it waits on disk, a quiet key is still served at once, nothing is lost twice."""

from __future__ import annotations

import time

import orjson

from sidecar._proto import sidecar_pb2 as pb
from tests.conftest import SidecarFactory
from tests.support.harness import Collectors


async def test_a_quiet_key_behind_a_spilled_backlog_is_served_promptly(
    sidecar_factory: SidecarFactory, collectors: Collectors
) -> None:
    """A busy key's backlog (far past a batch) stays on disk; a quiet key's later event still arrives within
    the flush interval plus 2 s of the outage ending, and every busy event arrives exactly once."""
    collectors.us.faults.down = True
    running = await sidecar_factory(
        SIDECAR_BATCH_MAX_BYTES="20000",
        SIDECAR_MAX_REQUESTS_PER_SECOND="10",
        SIDECAR_RETRY_MAX_DELAY="200ms",
    )
    busy = [
        pb.BatchEvent(
            track=pb.TrackRequest(
                write_key="wk-busy",
                user_id=f"u{i}",
                event="Report Generated",
                message_id=f"busy-{i}",
                properties_json=orjson.dumps({"i": i, "pad": "x" * 150}),
            )
        )
        for i in range(3000)
    ]
    for start in range(0, len(busy), 500):
        await running.stub.Batch(pb.BatchRequest(events=busy[start : start + 500]))
    reply = await running.stub.Track(pb.TrackRequest(write_key="wk-quiet", user_id="q", event="Report Generated"))
    collectors.us.faults.down = False
    back_up = time.monotonic()
    await collectors.us.store.wait_for_events(1, timeout=5.0, write_key="wk-quiet")
    assert time.monotonic() - back_up < 0.1 + 2.0
    assert collectors.us.store.message_ids("wk-quiet") == [reply.message_id]
    await running.stub.Flush(pb.FlushRequest(), timeout=60)
    delivered = collectors.us.store.message_ids("wk-busy")
    assert sorted(delivered) == sorted(f"busy-{i}" for i in range(3000))
    assert len(delivered) == len(set(delivered)), "a reloaded event was sent twice"
