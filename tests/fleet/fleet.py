"""Helpers of the fleet suite: several ``python -m sidecar serve`` processes sharing one Redis and one collector."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.collector.server import Collector
from sidecar.collector.store import ReceivedRequest
from tests.support.harness import TEST_ENV, SidecarProcess, free_port

EVENT_NAME = "Widget Configured"


@dataclass
class FleetMember:
    """One sidecar process of the fleet, the write key it sends with, and a stub to it."""

    process: SidecarProcess
    write_key: str
    channel: grpc.aio.Channel
    stub: pb_grpc.SidecarServiceStub

    async def send(self, count: int, prefix: str) -> list[str]:
        """Send ``count`` track events in one Batch call; return their message ids (every one must be accepted)."""
        events = [
            pb.BatchEvent(track=pb.TrackRequest(write_key=self.write_key, user_id=f"user-{n % 7}", event=EVENT_NAME,
                                                message_id=f"{prefix}-{self.write_key}-{n}"))
            for n in range(count)
        ]  # fmt: skip
        reply = await self.stub.Batch(pb.BatchRequest(events=events), timeout=10)
        assert reply.accepted == count, reply
        return [result.message_id for result in reply.results]


@contextlib.asynccontextmanager
async def fleet(size: int, collector: Collector, redis_url: str, folder: Path, env: dict[str, str],
                urls: list[str] | None = None) -> AsyncIterator[list[FleetMember]]:  # fmt: skip
    """``size`` sidecar processes pointed at ``collector`` and sharing ``redis_url`` (member ``i`` reaches it at
    ``urls[i]`` when given: a proxy that a test can cut); killed on exit."""
    members: list[FleetMember] = []
    try:
        for index in range(size):
            process = SidecarProcess(
                env={
                    **TEST_ENV,
                    "SIDECAR_ENDPOINT_US": collector.url,
                    "SIDECAR_REDIS_URL": urls[index] if urls else redis_url,
                    "SIDECAR_SPOOL_DIR": str(folder / f"spool{index}"),
                    **env,
                },
                port=free_port(),
                log_path=folder / f"sidecar{index}.log",
            )
            process.start()
            channel = grpc.aio.insecure_channel(process.address)
            members.append(FleetMember(process, f"wk-fleet-{index}", channel, pb_grpc.SidecarServiceStub(channel)))
        for member in members:
            await member.process.wait_ready(timeout=60)
        yield members
    finally:
        for member in members:
            await member.channel.close()
            member.process.ensure_stopped()


def started_between(requests: list[ReceivedRequest], begin: float, end: float) -> list[ReceivedRequest]:
    """The requests whose handling began in ``[begin, end)`` (monotonic seconds of the test process)."""
    return [request for request in requests if begin <= request.started_at < end]


def shares(requests: list[ReceivedRequest], members: list[FleetMember]) -> list[float]:
    """Each member's fraction of ``requests``, by write key."""
    total = max(1, len(requests))
    return [sum(request.write_key == member.write_key for request in requests) / total for member in members]
