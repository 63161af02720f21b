"""Two tiers and the outcome log, with real processes: watching an edge gives the final outcome that its gateway
settled (DELIVERED, DEAD_LETTERED with Segment's answer), not "forwarded"."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import grpc
import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.collector.server import Collector
from sidecar.model import write_key_hash
from tests.support.harness import TEST_ENV, SidecarProcess, free_port

pytestmark = pytest.mark.slow

KEY = "wk-tiers"


async def test_an_edges_stream_carries_what_its_gateway_settled(collector: Collector, tmp_path: Path) -> None:
    """Events sent to an edge reach the collector through a gateway; the edge's WatchOutcomes gives one final record
    per event, DELIVERED for those Segment took and DEAD_LETTERED (refused_event, 400) for the one it refused at the
    gateway, DEAD_LETTERED (rejected_event) for one the gateway itself rejected in the same batch, and the edge's
    GetMessageOutcome says the same."""
    collector.faults.reject_message_ids.add("t-3")
    token = secrets.token_urlsafe(24)
    gateway = SidecarProcess(
        {
            **TEST_ENV,
            "SIDECAR_ENDPOINT_US": collector.url,
            "SIDECAR_AUTH_TOKEN": token,
            "SIDECAR_SPOOL_DIR": str(tmp_path / "gateway"),
            "SIDECAR_SPEC_MODE": "strict",  # the edge only warns about "Purchase"; the gateway rejects it
        },
        free_port(),
        tmp_path / "gateway.log",
    )
    closed = f"http://127.0.0.1:{free_port()}"
    edge = SidecarProcess(
        {
            **TEST_ENV,
            "SIDECAR_MODE": "edge",
            "SIDECAR_SPEC_MODE": "warn",
            "SIDECAR_ENDPOINT_US": closed,
            "SIDECAR_ENDPOINT_EU": closed,
            "SIDECAR_FORWARD_TO": gateway.address,
            "SIDECAR_FORWARD_TOKEN": token,
            "SIDECAR_SPOOL_DIR": str(tmp_path / "edge"),
        },
        free_port(),
        tmp_path / "edge.log",
    )
    try:
        gateway.start()
        await gateway.wait_ready()
        edge.start()
        await edge.wait_ready()
        async with grpc.aio.insecure_channel(edge.address) as channel:
            stub = pb_grpc.SidecarServiceStub(channel)
            events = [
                pb.BatchEvent(
                    track=pb.TrackRequest(write_key=KEY, user_id="u", event="Report Generated", message_id=f"t-{i}")
                )
                for i in range(8)
            ]
            events.append(
                pb.BatchEvent(track=pb.TrackRequest(write_key=KEY, user_id="u", event="Purchase", message_id="t-p"))
            )
            reply = await stub.Batch(pb.BatchRequest(events=events))
            assert reply.accepted == 9
            got: list[pb.Outcome] = []
            async with asyncio.timeout(30):
                async for record in stub.WatchOutcomes(pb.WatchOutcomesRequest()):
                    got.append(record.outcome)
                    if len([r for r in got if r.message_id]) >= 9:
                        break
            finals = {r.message_id: r for r in got if r.message_id}
            assert sorted(finals) == sorted([f"t-{i}" for i in range(8)] + ["t-p"]), "each event's record once"
            for message_id, record in finals.items():
                assert record.write_key_fingerprint == write_key_hash(KEY)
                if message_id == "t-p":  # rejected by the gateway: final on the edge at once
                    assert (record.kind, record.dead_letter_reason) == (pb.OUTCOME_KIND_DEAD_LETTERED, "rejected_event")
                elif message_id == "t-3":
                    assert (record.kind, record.dead_letter_reason, record.segment_status) == (
                        pb.OUTCOME_KIND_DEAD_LETTERED,
                        "refused_event",
                        400,
                    )
                else:
                    assert record.kind == pb.OUTCOME_KIND_DELIVERED
            assert set(collector.store.message_ids()) == {f"t-{i}" for i in range(8)} - {"t-3"}
            one = await stub.GetMessageOutcome(pb.GetMessageOutcomeRequest(message_id="t-0"))
            assert one.state == pb.MESSAGE_STATE_DELIVERED
    finally:
        edge.ensure_stopped()
        gateway.ensure_stopped()
