"""What a real sidecar process accepts before a call is admitted (issue 20, items 6 and 8): request headers up to one
documented, deterministic bound, and a documented answer past it; and a refusal for too many calls in progress that
generic gRPC clients can retry too.

gRPC's own defaults refuse metadata between a soft 8 KiB and a hard 16 KiB *at random* (RESOURCE_EXHAUSTED with no
details); the server sets one bound, :data:`sidecar.api.server_options.MAX_METADATA_BYTES`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.api.server_options import MAX_METADATA_BYTES
from sidecar.collector.server import Collector
from tests.support.harness import TEST_ENV, SidecarProcess, free_port, held_flush, ready, retry_delay

pytestmark = pytest.mark.slow

TRACK = pb.TrackRequest(write_key="wk-admission", user_id="u", event="Report Generated")


def make_process(tmp_path: Path, endpoint: str, **env: str) -> SidecarProcess:
    """A sidecar process delivering to ``endpoint``, on a free port."""
    return SidecarProcess(
        env={
            **TEST_ENV,
            "SIDECAR_ENDPOINT_US": endpoint,
            "SIDECAR_ENDPOINT_EU": endpoint,
            "SIDECAR_SPOOL_DIR": str(tmp_path / "spool"),
            **env,
        },
        port=free_port(),
        log_path=tmp_path / "sidecar.log",
    )


@pytest.fixture
async def process(collector: Collector, tmp_path: Path) -> AsyncIterator[SidecarProcess]:
    """A ready sidecar process delivering to the collector."""
    running = make_process(tmp_path, collector.url)
    async with ready(running):
        yield running


async def test_metadata_under_the_bound_is_always_accepted(process: SidecarProcess) -> None:
    """20 calls with 12 KiB of request headers (a large tracing header) all succeed; on 99dcdba, above gRPC's soft
    8 KiB, about half were refused RESOURCE_EXHAUSTED at random."""
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)
        for _ in range(20):
            await stub.Track(TRACK, metadata=[("x-trace-context", "t" * (12 * 2**10))], timeout=5)


async def test_metadata_over_the_bound_is_refused_every_time_with_a_documented_answer(process: SidecarProcess) -> None:
    """Headers over MAX_METADATA_BYTES are RESOURCE_EXHAUSTED every time, saying the metadata size is over the
    limit (the README's error table lists it), and the sidecar keeps serving the next call."""
    assert MAX_METADATA_BYTES == 16 * 2**10  # the README's figure
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)
        for size in (MAX_METADATA_BYTES, 20 * 2**10, 64 * 2**10):
            for _ in range(5):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.Track(TRACK, metadata=[("x-trace-context", "t" * size)], timeout=5)
                assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "metadata size exceeds" in (caught.value.details() or "")
        await stub.Track(TRACK, timeout=5)


async def test_too_many_calls_carries_grpc_pushback_as_well_as_retry_info(tmp_path: Path) -> None:
    """With one call allowed and a Flush holding it, a Track is RESOURCE_EXHAUSTED with RetryInfo 0.1 s and the same
    delay as a grpc-retry-pushback-ms trailer ("100"), which gRPC's own retries honour (99dcdba: no trailer)."""
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: the Flush waits
    running = make_process(tmp_path, closed, SIDECAR_MAX_CONCURRENT_CALLS="1")
    async with ready(running):
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = pb_grpc.SidecarServiceStub(channel)
            await stub.Track(TRACK, timeout=5)
            flush = asyncio.ensure_future(held_flush(stub))
            deadline = time.monotonic() + 10
            while True:
                try:
                    await stub.Track(TRACK, timeout=5)
                except grpc.aio.AioRpcError as error:
                    busy = error
                    break
                assert time.monotonic() < deadline, "no call was refused while the Flush held the only place"
            flush.cancel()
        assert busy.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_delay(busy) == pytest.approx(0.1)
        assert dict(busy.trailing_metadata() or ()).get("grpc-retry-pushback-ms") == "100"
