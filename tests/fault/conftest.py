"""Fixtures of the fault suite: a real sidecar process (killable), a real collector, and a traffic driver that
remembers exactly which message ids were acknowledged."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import orjson
import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.collector.server import Collector
from tests.support.harness import TEST_ENV, SidecarProcess, free_port

pytestmark = pytest.mark.slow


ProcessFactory = Callable[..., SidecarProcess]


@pytest.fixture
def sidecar_process(collector: Collector, tmp_path: Path) -> Iterator[ProcessFactory]:
    """Builds sidecar processes sharing one spool folder and port (so a restart picks up where a kill left off)."""
    made: list[SidecarProcess] = []
    port = free_port()

    def factory(**env: str) -> SidecarProcess:
        process = SidecarProcess(
            env={
                **TEST_ENV,
                "SIDECAR_ENDPOINT_US": collector.url,
                "SIDECAR_ENDPOINT_EU": collector.url,
                "SIDECAR_SPOOL_DIR": str(tmp_path / "spool"),
                "SIDECAR_LOG_LEVEL": "info",
                **env,
            },
            port=port,
            log_path=tmp_path / f"sidecar{len(made)}.log",
        )
        made.append(process)
        return process

    yield factory
    for process in made:
        process.ensure_stopped()


@dataclass
class Traffic:
    """Sends Batch calls with explicit message ids and records which ones were acknowledged."""

    address: str
    write_keys: list[str]
    batch_size: int = 50
    acknowledged: set[str] = field(default_factory=set)
    unanswered: set[str] = field(default_factory=set)
    """Ids of calls that failed (a killed sidecar): each may or may not have been spooled before it died."""
    refused_calls: int = 0
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def batch(self) -> pb.BatchRequest:
        """The next batch of track events, spread over the write keys."""
        events = []
        for _ in range(self.batch_size):
            n = next(self._ids)
            key = self.write_keys[n % len(self.write_keys)]
            events.append(
                pb.BatchEvent(
                    track=pb.TrackRequest(
                        write_key=key,
                        user_id=f"user-{n % 97}",
                        message_id=f"m-{n:07d}",
                        event="Report Generated",
                        properties_json=orjson.dumps({"n": n, "pad": "p" * random.randint(50, 400)}),
                    )
                )
            )
        return pb.BatchRequest(events=events)

    async def send_one(self, stub: pb_grpc.SidecarServiceStub) -> None:
        """One Batch call; a failed call (killed sidecar, shutdown) acknowledges nothing."""
        request = self.batch()
        try:
            reply = await stub.Batch(request, timeout=5)
        except grpc.aio.AioRpcError:
            self.refused_calls += 1
            self.unanswered.update(event.track.message_id for event in request.events)
            return
        self.acknowledged.update(r.message_id for r in reply.results if r.WhichOneof("result") == "message_id")

    async def run(self, calls: int, pause: float = 0.0) -> None:
        """Send ``calls`` batches one after another."""
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = pb_grpc.SidecarServiceStub(channel)
            for _ in range(calls):
                await self.send_one(stub)
                if pause:
                    await asyncio.sleep(pause)

    async def run_until(self, stop: asyncio.Event, pause: float = 0.02) -> None:
        """Send batches until ``stop`` is set."""
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = pb_grpc.SidecarServiceStub(channel)
            while not stop.is_set():
                await self.send_one(stub)
                await asyncio.sleep(pause)


async def wait_delivered(collector: Collector, ids: set[str], timeout: float) -> None:
    """Wait until every id in ``ids`` has arrived in a 2xx batch, or fail saying how many are missing."""
    try:
        await collector.store.wait_until(lambda store: ids <= set(store.message_ids()), timeout=timeout)
    except TimeoutError:
        missing = ids - set(collector.store.message_ids())
        raise AssertionError(f"{len(missing)} acknowledged events never arrived, e.g. {sorted(missing)[:5]}") from None


def assert_no_loss_and_clean_duplicates(collector: Collector, acknowledged: set[str], cap: float) -> None:
    """Zero acknowledged events lost; any event that arrived twice arrived identical (same id, same content);
    the collector never saw more requests than the cap in any one-second window."""
    arrived: dict[str, bytes] = {}
    for event in collector.store.events():
        body = orjson.dumps({k: v for k, v in event.items() if k != "sentAt"}, option=orjson.OPT_SORT_KEYS)
        previous = arrived.setdefault(event["messageId"], body)
        assert previous == body, f"message id {event['messageId']} arrived twice with different content"
    assert acknowledged <= set(arrived)
    assert collector.store.max_requests_in_window(1.0) <= cap
