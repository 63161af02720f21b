"""The batching helpers against a real gRPC server: grouping by size and time, flush, close, rejections."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest
from conftest import Failure, Running

from segment_sidecar_client import (
    AsyncBatcher,
    AsyncClient,
    Batcher,
    BatchResult,
    Client,
    Event,
    SidecarError,
    Track,
)


def batch_sizes(running: Running) -> list[int]:
    """How many events each Batch call the server saw carried."""
    return [len(request.events) for method, request, _ in running.sidecar.seen if method == "Batch"]


async def test_async_batcher_groups_by_size_and_flushes_on_close(scripted: Running) -> None:
    """25 events with max_events=10 leave as 10, 10 and, on close, 5."""
    async with (
        AsyncClient(scripted.address, write_key="wk") as client,
        AsyncBatcher(client, max_events=10, max_delay=30.0) as batcher,
    ):
        ids = [await batcher.add(Track(user_id="u", event=f"E{i}")) for i in range(25)]
    assert batch_sizes(scripted) == [10, 10, 5]
    sent = [getattr(e, e.WhichOneof("event")).message_id for _, r, _ in scripted.sidecar.seen for e in r.events]
    assert sent == ids


async def test_async_batcher_sends_after_max_delay(scripted: Running) -> None:
    """A lone event leaves once it has waited max_delay, without a flush."""
    async with AsyncClient(scripted.address, write_key="wk") as client:
        batcher = AsyncBatcher(client, max_delay=0.2)
        started = time.monotonic()
        await batcher.add(Track(user_id="u", event="E"))
        while not batch_sizes(scripted) and time.monotonic() - started < 5:
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        await batcher.aclose()
    assert batch_sizes(scripted) == [1]
    assert 0.15 <= elapsed < 5


async def test_async_batcher_reports_rejections_and_failures(scripted: Running) -> None:
    """Rejected events reach on_result; a batch failing as a whole after retries reaches on_error."""
    results: list[BatchResult] = []
    failed: list[tuple[list[Event], SidecarError]] = []
    async with (
        AsyncClient(scripted.address, write_key="wk", timeout=0.5) as client,
        AsyncBatcher(
            client, on_result=lambda _e, r: results.append(r), on_error=lambda es, err: failed.append((es, err))
        ) as batcher,
    ):
        await batcher.add(Track(user_id="u", event="Bad Event"))
        await batcher.add(Track(user_id="u", event="Good"))
        await batcher.flush()
        scripted.sidecar.failures = [Failure(grpc.StatusCode.INVALID_ARGUMENT, "whole batch refused")]
        await batcher.add(Track(user_id="u", event="Lost"))
        await batcher.flush()
    assert [r.ok for r in results] == [False, True]
    assert len(failed) == 1
    assert failed[0][1].code == grpc.StatusCode.INVALID_ARGUMENT


async def test_sync_batcher_groups_and_flushes(scripted: Running) -> None:
    """The thread-based batcher sends by size, on flush and on close, from several producer threads."""

    def produce(batcher: Batcher) -> None:
        for i in range(10):
            batcher.add(Track(user_id="u", event=f"E{i}"))

    def run() -> None:
        with Client(scripted.address, write_key="wk") as client:
            batcher = Batcher(client, max_events=20, max_delay=30.0)
            threads = [threading.Thread(target=produce, args=(batcher,)) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            batcher.flush()
            assert sum(batch_sizes(scripted)) == 40
            batcher.add(Track(user_id="u", event="last"))
            batcher.close()
            batcher.close()

    await asyncio.to_thread(run)
    sizes = batch_sizes(scripted)
    assert sizes[:2] == [20, 20]
    assert sizes[-1] == 1
    assert sum(sizes) == 41


async def test_unsendable_event_raises_from_add(scripted: Running) -> None:
    """An event without any write key fails in add(), where the producer sees it, and the batcher keeps working."""
    async with AsyncClient(scripted.address) as client, AsyncBatcher(client) as batcher:
        with pytest.raises(ValueError, match="write_key"):
            await batcher.add(Track(user_id="u", event="E"))
        await batcher.add(Track(user_id="u", event="E", write_key="wk"))
        await batcher.flush()
    assert batch_sizes(scripted) == [1]


async def test_a_closed_channel_reaches_on_error_and_the_batcher_survives(scripted: Running) -> None:
    """A failure that is not a gRPC status (here: the channel was closed) goes to on_error; flush still returns."""
    failed: list[SidecarError] = []
    client = AsyncClient(scripted.address, write_key="wk")
    batcher = AsyncBatcher(client, on_error=lambda _events, error: failed.append(error))
    await batcher.add(Track(user_id="u", event="E"))
    await client.close()
    await batcher.flush()
    await batcher.add(Track(user_id="u", event="E2"))
    await batcher.aclose()
    assert len(failed) == 2


async def test_add_waits_while_the_queue_is_full(scripted: Running) -> None:
    """With max_queue=2, seven concurrent producers all get through, in batches of at most two."""
    async with (
        AsyncClient(scripted.address, write_key="wk") as client,
        AsyncBatcher(client, max_events=2, max_queue=2, max_delay=30.0) as batcher,
    ):
        await asyncio.gather(*(batcher.add(Track(user_id="u", event=f"E{i}")) for i in range(7)))
    assert sum(batch_sizes(scripted)) == 7
    assert all(size <= 2 for size in batch_sizes(scripted))
