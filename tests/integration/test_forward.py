"""Edge mode in one process: an edge forwards to a gateway, which re-validates; what the gateway refuses becomes a
dead letter on the edge with the gateway's reason."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grpc
import pytest

from sidecar._proto import sidecar_pb2 as pb
from tests.support.harness import Collectors, start_sidecar

TOKEN = "edge-to-gateway-token"


async def test_the_gateway_revalidates_and_its_rejections_are_dead_lettered_on_the_edge(
    collectors: Collectors, tmp_path: Path
) -> None:
    """The edge (Spec check off) accepts a near-miss name the gateway (strict) refuses: the edge dead-letters it
    with the gateway's reason; the other events reach Segment once, through the gateway, with the edge's message
    ids and context."""
    gateway = await start_sidecar(collectors, tmp_path / "gateway", {"SIDECAR_AUTH_TOKEN": TOKEN})
    edge = await start_sidecar(
        collectors,
        tmp_path / "edge",
        {
            "SIDECAR_FORWARD_TO": f"127.0.0.1:{gateway.app.port}",
            "SIDECAR_FORWARD_TOKEN": TOKEN,
            "SIDECAR_SPEC_MODE": "off",
            "SIDECAR_ENDPOINT_US": "http://127.0.0.1:9",  # never used: an edge does not call Segment
        },
    )
    try:
        names = ["Report Generated", "App Launched", "Report Shared"]
        reply = await edge.stub.Batch(
            pb.BatchRequest(
                events=[
                    pb.BatchEvent(track=pb.TrackRequest(write_key="wk-edge", user_id="u", event=name,
                                                        context_json=b'{"ip":"203.0.113.9"}'))
                    for name in names
                ]
            ),
            timeout=5,
        )  # fmt: skip
        assert reply.accepted == 3
        ids = [result.message_id for result in reply.results]
        flushed = await edge.stub.Flush(pb.FlushRequest(), timeout=10)
        assert flushed.delivered == 2 and flushed.dead_lettered == 1
        await gateway.stub.Flush(pb.FlushRequest(), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10)
    finally:
        await edge.close()
        await gateway.close()
    events = collectors.us.store.events()
    assert [event["messageId"] for event in events] == [ids[0], ids[2]]
    assert all(event["context"]["ip"] == "203.0.113.9" for event in events)
    with sqlite3.connect(tmp_path / "edge" / "spool.db") as db:
        rows = db.execute("SELECT message_id, reason, response FROM dead_letters").fetchall()
    assert len(rows) == 1 and rows[0][0] == ids[1]
    assert "gateway" in rows[0][1] and "Application Opened" in rows[0][2]


async def test_an_edges_flush_means_delivered_by_the_gateways(collectors: Collectors, tmp_path: Path) -> None:
    """Segment down: the edge has forwarded its event, but its Flush answers DEADLINE_EXCEEDED, as a one-tier sidecar
    does, because the gateway's own Flush has not confirmed delivery; once Segment is back, the edge's Flush is OK
    and the event has arrived."""
    collectors.us.faults.down = True
    gateway = await start_sidecar(collectors, tmp_path / "gateway", {"SIDECAR_AUTH_TOKEN": TOKEN})
    edge = await start_sidecar(
        collectors,
        tmp_path / "edge",
        {
            "SIDECAR_FORWARD_TO": f"127.0.0.1:{gateway.app.port}",
            "SIDECAR_FORWARD_TOKEN": TOKEN,
            "SIDECAR_ENDPOINT_US": "http://127.0.0.1:9",
        },
    )
    try:
        reply = await edge.stub.Track(pb.TrackRequest(write_key="wk-edge", user_id="u", event="Report Generated"))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await edge.stub.Flush(pb.FlushRequest(), timeout=2.0)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert collectors.us.store.message_ids() == []
        collectors.us.faults.down = False
        flushed = await edge.stub.Flush(pb.FlushRequest(), timeout=20)
        assert flushed.dead_lettered == 0
        assert collectors.us.store.message_ids() == [reply.message_id]
    finally:
        await edge.close()
        await gateway.close()
