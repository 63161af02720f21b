"""The batching helpers against a real gRPC server: grouping by size and time, flush, close, rejections."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable

import grpc
import pytest
from conftest import Failure, Running

from segment_sidecar_client import (
    Alias,
    AsyncBatcher,
    AsyncClient,
    Batcher,
    BatchResult,
    Client,
    Event,
    Group,
    Identify,
    SidecarError,
    Track,
)
from segment_sidecar_client._events import to_batch_event, to_request


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


def run_sync(scripted: Running, body: Callable[[Client], None]) -> None:
    """Run ``body`` with a blocking client in a thread (the scripted server lives on this test's event loop)."""

    def run() -> None:
        with Client(scripted.address, write_key="wk") as client:
            body(client)

    return asyncio.to_thread(run)  # type: ignore[return-value]


@pytest.mark.parametrize("counters", [True, False], ids=["counters", "no-counters"])
async def test_default_handler_logs_each_rejection_once(
    scripted: Running, counters: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The default on_result logs the rejected events only, with their ids, whether or not the counters are filled."""
    scripted.sidecar.batch_counts = counters
    ids: list[str] = []

    def body(client: Client) -> None:
        with Batcher(client, max_events=50) as batcher:
            for i in range(120):
                ids.append(batcher.add(Track(user_id="u", event="Bad Event" if i in {3, 77} else "Good")))
            batcher.flush()

    with caplog.at_level(logging.WARNING, logger="segment_sidecar_client"):
        await run_sync(scripted, body)
    rejected = [record.getMessage() for record in caplog.records if "rejected" in record.getMessage()]
    assert len(rejected) == 2
    assert f"message_id={ids[3]}" in rejected[0]
    assert f"message_id={ids[77]}" in rejected[1]


async def test_handlers_get_events_with_their_message_ids(scripted: Running) -> None:
    """on_result and on_error receive each event with the message id add() returned and the sidecar saw."""
    seen: list[tuple[Event, BatchResult]] = []
    failed: list[Event] = []
    ids: list[str] = []

    def body(client: Client) -> None:
        with Batcher(
            client,
            on_result=lambda event, result: seen.append((event, result)),
            on_error=lambda events, _error: failed.extend(events),
        ) as batcher:
            ids.append(batcher.add(Track(user_id="u", event="Good")))
            ids.append(batcher.add(Track(user_id="u", event="Bad Event", message_id="mine")))
            batcher.flush()
            scripted.sidecar.failures = [Failure(grpc.StatusCode.INVALID_ARGUMENT, "whole batch refused")]
            ids.append(batcher.add(Track(user_id="u", event="Lost")))
            batcher.flush()

    await run_sync(scripted, body)
    assert ids[1] == "mine"
    assert [(event.message_id, result.message_id, result.ok) for event, result in seen] == [
        (ids[0], ids[0], True),
        ("mine", "mine", False),
    ]
    assert [event.message_id for event in failed] == [ids[2]]
    assert [(event.event, event.user_id) for event, _ in seen] == [("Good", "u"), ("Bad Event", "u")]


async def test_sync_batcher_sends_after_max_delay(scripted: Running) -> None:
    """A lone event leaves the thread-based batcher once it has waited max_delay, without a flush."""
    elapsed: list[float] = []

    def body(client: Client) -> None:
        with Batcher(client, max_delay=0.2) as batcher:
            started = time.monotonic()
            batcher.add(Track(user_id="u", event="E"))
            while not batch_sizes(scripted) and time.monotonic() - started < 5:
                time.sleep(0.01)
            elapsed.append(time.monotonic() - started)

    await run_sync(scripted, body)
    assert batch_sizes(scripted) == [1]
    assert 0.15 <= elapsed[0] < 5


async def test_sync_add_blocks_while_the_queue_is_full(scripted: Running) -> None:
    """With max_queue=2, producers on several threads all get through, in batches of at most two."""

    def body(client: Client) -> None:
        with Batcher(client, max_events=2, max_queue=2, max_delay=30.0) as batcher:
            threads = [
                threading.Thread(target=lambda: [batcher.add(Track(user_id="u", event="E")) for _ in range(5)])
                for _ in range(3)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

    await run_sync(scripted, body)
    assert sum(batch_sizes(scripted)) == 15
    assert all(size <= 2 for size in batch_sizes(scripted))


async def test_batches_on_the_wire_are_the_messages_of_the_old_path(scripted: Running) -> None:
    """What the server parses from the batcher's pre-encoded bodies equals the message path's requests, one by one."""
    events = [
        Track(user_id=f"u{i}", event="Email Opened", properties={"n": i, "s": "é"}, context={"ip": "x"})
        for i in range(30)
    ] + [Identify(user_id="u", traits={"plan": "pro"}, region="eu"), Alias(user_id="u", previous_id="p")]

    def body(client: Client) -> None:
        with Batcher(client, max_events=8) as batcher:
            ids = [batcher.add(event) for event in events]
            batcher.flush()
        want = [
            to_batch_event(to_request(dataclasses.replace(event, message_id=message_id), "wk", None))
            for event, message_id in zip(events, ids, strict=True)
        ]
        got = [event for method, request, _ in scripted.sidecar.seen if method == "Batch" for event in request.events]
        assert got == want

    await run_sync(scripted, body)
    assert batch_sizes(scripted) == [8, 8, 8, 8]


async def test_client_batch_and_batch_requests_send_the_same_events(scripted: Running) -> None:
    """Client.batch (encoded events) and batch_requests (prepared messages) put the same events on the wire."""

    def body(client: Client) -> None:
        events = [Track(user_id="u", event="E", message_id="m1"), Group(user_id="u", group_id="g", message_id="m2")]
        first = client.batch(events)
        second = client.batch_requests([client.prepare(event) for event in events])
        assert [r.message_id for r in first] == [r.message_id for r in second] == ["m1", "m2"]

    await run_sync(scripted, body)
    sent = [request for method, request, _ in scripted.sidecar.seen if method == "Batch"]
    assert len(sent) == 2
    assert sent[0] == sent[1]


async def test_add_waits_for_room_while_a_batch_is_held_at_the_sidecar(scripted: Running) -> None:
    """With a batch held at the sidecar and the queue full, add waits until the sidecar answers.

    max_events=2, max_queue=2: two events are in flight, two queue, the fifth add waits; then all five arrive.
    """
    gate = asyncio.Event()
    scripted.sidecar.batch_gate = gate
    async with (
        AsyncClient(scripted.address, write_key="wk") as client,
        AsyncBatcher(client, max_events=2, max_queue=2, max_delay=30.0) as batcher,
    ):
        for index in range(4):
            await batcher.add(Track(user_id="u", event=f"E{index}"))
        fifth = asyncio.ensure_future(batcher.add(Track(user_id="u", event="E4")))
        await until(lambda: scripted.sidecar.batches_held == 1)
        await asyncio.sleep(0.2)  # a window in which a queue that did not push back would have taken it
        assert not fifth.done(), "add returned while the queue was full"
        gate.set()
        await asyncio.wait_for(fifth, 5)
    assert batch_sizes(scripted) == [2, 2, 1]


async def test_sync_add_blocks_while_a_batch_is_held_at_the_sidecar(scripted: Running) -> None:
    """The blocking Batcher likewise: with a batch held and the queue full, add blocks its thread.

    Two events are in flight, two queue, the fifth add blocks until the sidecar answers; then all five arrive.
    """
    gate = asyncio.Event()
    scripted.sidecar.batch_gate = gate
    loop = asyncio.get_running_loop()
    blocked: list[bool] = []

    def body(client: Client) -> None:
        with Batcher(client, max_events=2, max_queue=2, max_delay=30.0) as batcher:
            for index in range(4):
                batcher.add(Track(user_id="u", event=f"E{index}"))
            fifth = threading.Thread(target=batcher.add, args=(Track(user_id="u", event="E4"),))
            fifth.start()
            fifth.join(0.3)
            blocked.append(fifth.is_alive())
            loop.call_soon_threadsafe(gate.set)
            fifth.join(5)

    await run_sync(scripted, body)
    assert blocked == [True], "add returned while the queue was full"
    assert batch_sizes(scripted) == [2, 2, 1]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait on the event loop until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)
