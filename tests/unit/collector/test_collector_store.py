"""The collector's store: the sliding-window request count, awaitable arrivals and the views tests read."""

from __future__ import annotations

import asyncio
import time

import pytest

from sidecar.collector.store import ReceivedRequest, Store, max_requests_in_window


def _request(status: int = 200, events: int = 1, write_key: str = "key", started_at: float = 0.0) -> ReceivedRequest:
    """A received request with ``events`` track events numbered from 0."""
    return ReceivedRequest(
        started_at=started_at,
        status=status,
        write_key=write_key,
        events=[{"type": "track", "messageId": f"{write_key}-{i}", "userId": "u", "event": "E"} for i in range(events)],
    )


def test_window_empty_and_single() -> None:
    """No requests give 0 and one request gives 1."""
    assert max_requests_in_window([]) == 0
    assert max_requests_in_window([5.0]) == 1


def test_window_is_half_open() -> None:
    """Two requests exactly one window apart are not in the same window; a hair less apart they are."""
    assert max_requests_in_window([0.0, 1.0]) == 1
    assert max_requests_in_window([0.0, 0.999]) == 2


def test_window_finds_densest_stretch_anywhere() -> None:
    """The maximum is over every sliding window, not over windows aligned to whole seconds."""
    times = [0.1, 0.6, 0.9, 1.05, 1.2, 1.55, 2.5]
    # [0.6, 1.6) holds 0.6, 0.9, 1.05, 1.2, 1.55; aligned seconds would give at most 3.
    assert max_requests_in_window(times) == 5


def test_window_accepts_unsorted_times() -> None:
    """Requests are recorded when they end, so the times arrive out of order."""
    assert max_requests_in_window([1.5, 0.2, 1.1, 0.3, 3.0]) == 3


def test_window_of_paced_requests_equals_the_rate() -> None:
    """Requests started every 20 ms for 3 s count 50 in any one-second window, and 25 in half a second."""
    times = [i * 0.02 for i in range(150)]
    assert max_requests_in_window(times) == 50
    assert max_requests_in_window(times, window=0.5) == 25


def test_window_burst_doubles_the_count() -> None:
    """A burst of 50 right after 50 paced ones reads about 2x the cap: the case the cap forbids."""
    paced = [i * 0.02 for i in range(50)]
    burst = [1.0 + i * 0.001 for i in range(50)]
    assert max_requests_in_window(paced + burst) > 50


def test_window_rejects_non_positive_width() -> None:
    """A zero window is a caller's mistake."""
    with pytest.raises(ValueError, match="positive"):
        max_requests_in_window([1.0], window=0)


def test_events_only_from_accepted_requests_in_order() -> None:
    """``events()`` and ``message_ids()`` skip refused requests and keep arrival order and duplicates."""
    store = Store()
    store.record(_request(events=2, write_key="a"))
    store.record(_request(status=500, events=3, write_key="a"))
    store.record(_request(events=1, write_key="b"))
    store.record(_request(events=1, write_key="a"))
    assert store.message_ids() == ["a-0", "a-1", "b-0", "a-0"]
    assert [e["messageId"] for e in store.events("b")] == ["b-0"]
    assert store.accepted_event_count == 4
    assert store.statuses() == {200: 3, 500: 1}
    assert len(store.requests) == 4


def test_max_requests_counts_failed_requests() -> None:
    """The store's window count includes refused requests: every attempt counts against the cap."""
    store = Store()
    for i, status in enumerate([200, 500, 429, 0, 200]):
        store.record(_request(status=status, started_at=10 + i * 0.1))
    assert store.max_requests_in_window() == 5


def test_clear_forgets_everything() -> None:
    """After ``clear()`` the store is empty."""
    store = Store()
    store.record(_request(events=3))
    store.clear()
    assert store.requests == []
    assert store.events() == []
    assert store.accepted_event_count == 0


def test_slim_store_keeps_identity_fields_only() -> None:
    """``keep_events=False`` keeps type, messageId and userId, enough to count deliveries."""
    store = Store(keep_events=False)
    store.record(_request(events=1))
    assert store.events() == [{"type": "track", "messageId": "key-0", "userId": "u"}]


async def test_wait_for_events_wakes_on_arrival() -> None:
    """A waiter returns as soon as enough events arrive, well before its timeout."""
    store = Store()

    async def deliver() -> None:
        for _ in range(3):
            await asyncio.sleep(0.01)
            store.record(_request(events=2))

    started = time.monotonic()
    task = asyncio.create_task(deliver())
    events = await store.wait_for_events(6, timeout=10)
    await task
    assert len(events) == 6
    assert time.monotonic() - started < 5


async def test_wait_for_events_per_write_key() -> None:
    """Waiting for one key's events ignores the other keys' events."""
    store = Store()
    store.record(_request(events=5, write_key="busy"))
    with pytest.raises(TimeoutError):
        await store.wait_for_events(1, timeout=0.05, write_key="quiet")
    store.record(_request(events=1, write_key="quiet"))
    assert len(await store.wait_for_events(1, timeout=1, write_key="quiet")) == 1


async def test_wait_times_out_with_what_arrived() -> None:
    """A timed-out wait says how many requests and events did arrive, to make a failing test readable."""
    store = Store()
    store.record(_request(status=503, events=1))
    with pytest.raises(TimeoutError, match=r"1 requests, 0 events accepted, statuses \{503: 1\}"):
        await store.wait_for_events(1, timeout=0.05)


async def test_wait_for_requests_counts_failures() -> None:
    """``wait_for_requests`` counts refused requests too."""
    store = Store()
    store.record(_request(status=401))
    requests = await store.wait_for_requests(1, timeout=1)
    assert requests[0].status == 401
    assert requests[0].write_key_hash is not None
    assert "key" not in repr(requests[0])
