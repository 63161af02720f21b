"""The outcome readers over a memory store: lifecycle (stop without start, twice), a watcher woken by news rather
than polling, filters by key and kind, OUT_OF_RANGE after pruning, and the gateway follower's lifecycle."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.errors import CursorExpired, ShuttingDown
from sidecar.model import Event, Region, ShardKey, write_key_hash
from sidecar.outcomes.records import KeyRecord, OutcomeKind, OutcomeRecord, Stamp
from sidecar.outcomes.service import Outcomes
from sidecar.outcomes.tiers import GatewayFollower
from sidecar.spool import MemoryStore
from sidecar.spool.memory import MemoryOutcomeReader


class NoKeys:
    """A KeySource that knows no key (delivery's side is tested with the dispatcher)."""

    def keys(self) -> list[ShardKey]:
        """None."""
        return []

    def record(self, key: ShardKey) -> KeyRecord | None:
        """UNKNOWN."""
        return None

    def backlog(self, key: ShardKey) -> tuple[int, float | None]:
        """Empty."""
        return 0, None

    def in_flight(self, key: ShardKey, seq: int) -> bool:
        """Never."""
        return False

    def delivered_at(self, key: ShardKey) -> float | None:
        """Never."""
        return None


def _deliver(store: MemoryStore, key: str, seq: int, kind: OutcomeKind = OutcomeKind.DELIVERED) -> None:
    store.insert([Event(key, Region.US, f"{key}-{seq}", b"{}", 1.0, seq)])
    store.delete([seq], Stamp(kind, 2.0, write_key_hash(key), "us", 200))


async def test_stop_without_start_and_twice_is_safe() -> None:
    """stop() before start() and a second stop() do nothing harmful."""
    outcomes = Outcomes(MemoryOutcomeReader(MemoryStore()), NoKeys())
    await outcomes.stop()
    await outcomes.start()
    await outcomes.stop()
    await outcomes.stop()
    follower = GatewayFollower([], None, _NoSink())
    await follower.stop()
    await follower.start()
    await follower.stop()


async def test_a_watcher_wakes_on_news_and_filters_by_key_and_kind() -> None:
    """A watcher caught up waits; a record written and announced reaches it; another key's record does not."""
    store = MemoryStore()
    outcomes = Outcomes(MemoryOutcomeReader(store), NoKeys())
    await outcomes.start()
    _, watch = await outcomes.watch("", ["wk-a"], [int(OutcomeKind.DELIVERED)], from_now=False)
    nxt = asyncio.ensure_future(anext(watch))
    for _ in range(100):  # loop turns until the watcher has read its (empty) page and waits for news
        if 1 in outcomes.watchers and outcomes.watchers[1].waiting:
            break
        await asyncio.sleep(0)
    assert outcomes.watchers[1].waiting and not nxt.done()
    _deliver(store, "wk-b", 1)
    _deliver(store, "wk-a", 2)
    outcomes.written()
    record = await asyncio.wait_for(nxt, 5)
    assert record.message_id == "wk-a-2"
    assert list(outcomes.lag()) == [1]  # one watcher, numbered 1
    await watch.aclose()
    assert outcomes.watchers == {}
    await outcomes.stop()


async def test_a_cursor_before_pruned_records_is_out_of_range_naming_the_oldest() -> None:
    """After pruning, resuming from a cursor whose next record is gone raises CursorExpired with the oldest cursor."""
    store = MemoryStore()
    outcomes = Outcomes(MemoryOutcomeReader(store), NoKeys())
    await outcomes.start()
    for seq in range(1, 6):
        _deliver(store, "wk-a", seq)
    first = outcomes.cursor_of(OutcomeRecord(OutcomeKind.DELIVERED, 0.0, "", "", seq=1))
    store.prune_outcomes(10**9, 3.0)  # every record (at 2.0) is older
    _deliver(store, "wk-a", 6)
    with pytest.raises(CursorExpired) as expired:
        await outcomes.watch(first, [], [], from_now=False)
    assert expired.value.oldest_cursor == outcomes.cursor_of(OutcomeRecord(OutcomeKind.DELIVERED, 0.0, "", "", seq=6))
    await outcomes.stop()


async def test_the_start_cursor_of_a_pruned_empty_log_is_after_the_newest() -> None:
    """With every record pruned, a watch from the oldest held starts after the newest ever written, so that a client
    resuming from its start cursor is not told OUT_OF_RANGE; a new record comes to both."""
    store = MemoryStore()
    outcomes = Outcomes(MemoryOutcomeReader(store), NoKeys())
    await outcomes.start()
    for seq in range(1, 4):
        _deliver(store, "wk-a", seq)
    store.prune_outcomes(10**9, 3.0)  # every record (at 2.0) is older
    start, first = await outcomes.watch("", [], [], from_now=False)
    assert start == outcomes.cursor_of(OutcomeRecord(OutcomeKind.DELIVERED, 0.0, "", "", seq=3))
    again, resumed = await outcomes.watch(start, [], [], from_now=False)
    assert again == start
    _deliver(store, "wk-a", 4)
    outcomes.written()
    assert [(await asyncio.wait_for(anext(w), 5)).message_id for w in (first, resumed)] == ["wk-a-4", "wk-a-4"]
    await first.aclose()
    await resumed.aclose()
    await outcomes.stop()


class _NoSink:
    """A ForwardedSink that is never called (no gateway)."""

    async def settle_forwarded(self, gateway: str, records: object, cursor: str) -> None:
        """Unused."""

    async def gateway_cursor(self, gateway: str) -> str:
        """Unused."""
        return ""


async def test_a_watcher_open_at_stop_ends_with_shutting_down() -> None:
    """A watcher waiting for news when the readers stop is woken and ends with ShuttingDown (UNAVAILABLE), without
    reopening the reader."""
    outcomes = Outcomes(MemoryOutcomeReader(MemoryStore()), NoKeys())
    await outcomes.start()
    _, watch = await outcomes.watch("", [], [], from_now=True)
    nxt = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0)
    await outcomes.stop()
    with pytest.raises(ShuttingDown):
        await asyncio.wait_for(nxt, 5)
