"""The spool's per-key API: what it tells its downstream, the oldest event it answers after a removal, and per-key
reads."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sidecar.errors import SpoolFailure
from sidecar.model import Backlog, Event, Region, ShardKey, SpooledEvent
from sidecar.outcomes.records import Stamp
from sidecar.spool import MemoryStore, Spool, SqliteStore
from sidecar.spool.offline import mark_for_replay
from sidecar.spool.reads import _READ_KEY

A: ShardKey = ("wk-a", Region.US)
B: ShardKey = ("wk-b", Region.US)
A_EU: ShardKey = ("wk-a", Region.EU)


def make(key: ShardKey, n: int, size: int = 10, start: int = 0, at: float = 100.0) -> list[Event]:
    """``n`` events of ``key`` with ``size``-byte payloads, accepted at ``at + i``."""
    return [Event(key[0], key[1], f"{key[0]}-{key[1]}-{start + i}", b"x" * size, at + start + i) for i in range(n)]


def interleaved(n: int) -> list[Event]:
    """``n`` events alternating between keys A and B (A first), 10 bytes each."""
    return [make(A if i % 2 == 0 else B, 1, start=i)[0] for i in range(n)]


@pytest.fixture(params=["sqlite", "memory"])
def open_spool(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Spool]:
    """Builds spools of one kind on one folder (a SQLite spool can be reopened on it)."""

    def build() -> Spool:
        store = SqliteStore(tmp_path) if request.param == "sqlite" else MemoryStore()
        return Spool(store, max_bytes=10**8)

    return build


@pytest.fixture
async def spool(open_spool: Callable[[], Spool]) -> AsyncIterator[Spool]:
    """A started spool of each kind."""
    started = open_spool()
    await started.start()
    yield started
    await started.stop()


class Recorder:
    """A downstream that records what the spool tells it."""

    def __init__(self) -> None:
        self.backlogs: dict[ShardKey, Backlog] | None = None
        self.last_seq: int | None = None
        self.groups: list[list[int]] = []

    def recovered(self, backlogs: Mapping[ShardKey, Backlog], last_seq: int) -> None:
        """Record what the spool held when it opened."""
        self.backlogs = dict(backlogs)
        self.last_seq = last_seq

    def appended(self, events: Sequence[SpooledEvent]) -> None:
        """Record a group of events that joined the queue."""
        self.groups.append([event.seq for event in events])


async def test_the_downstream_is_told_every_commit_in_seq_order(spool: Spool) -> None:
    """Each commit is told once, after it is durable, with its events in seq order; the spool keeps no per-key
    state of its own."""
    heard = Recorder()
    spool.subscribe(heard)
    assert heard.backlogs == {} and heard.last_seq == 0
    first = await spool.append(interleaved(6))
    second = await spool.append(make(A_EU, 2, size=7))
    assert heard.groups == [[e.seq for e in first], [e.seq for e in second]]
    assert spool.pending_events == 8 and spool.pending_bytes == 74


async def test_removing_the_oldest_events_answers_the_true_next_oldest(spool: Spool) -> None:
    """After the oldest events of a key leave (interleaved with another key's), the spool answers the key's next
    event as its oldest; when all have left, the key is absent from the answer."""
    spooled = await spool.append(interleaved(10))  # A: seqs 1,3,5,7,9; B: 2,4,6,8,10
    a_events = [e for e in spooled if e.shard == A]
    assert await spool.remove(a_events[:2]) == {A: (5, a_events[2].accepted_at)}
    assert await spool.dead_letter(a_events[2:4], "refused", "HTTP 400") == {A: (9, a_events[4].accepted_at)}
    assert await spool.remove(a_events[4:]) == {}
    assert spool.pending_events == 5 and spool.pending_bytes == 50


async def test_removing_newer_events_keeps_the_oldest(spool: Spool) -> None:
    """A removal that leaves the oldest event (a later batch settled first) answers that event."""
    spooled = await spool.append(make(A, 5))
    assert await spool.remove(spooled[2:]) == {A: (spooled[0].seq, spooled[0].accepted_at)}


async def test_concurrent_removals_of_one_key_answer_no_newer_than_the_truth(spool: Spool) -> None:
    """Two batches of one key removed at once: the later answer (by seq) is the true oldest, and once both are gone
    one of the answers says the key is empty."""
    spooled = await spool.append(make(A, 9))
    answers = await asyncio.gather(spool.remove(spooled[:3]), spool.remove(spooled[3:6]))
    assert max(answer[A] for answer in answers if answer) == (spooled[6].seq, spooled[6].accepted_at)
    answers = await asyncio.gather(spool.remove(spooled[7:]), spool.remove(spooled[6:7]))
    assert any(answer == {} for answer in answers)


async def test_a_removal_whose_caller_gave_up_is_still_counted(tmp_path: Path) -> None:
    """The counters follow the store, not the caller: a remove that ran while its caller stopped waiting (a
    deadline) is still counted."""
    store = SqliteStore(tmp_path)
    in_job, release = threading.Event(), threading.Event()
    delete = store.delete

    def slow_delete(seqs: Sequence[int], stamp: Stamp | None = None) -> None:
        in_job.set()
        release.wait(5)
        delete(seqs, stamp)

    store.delete = slow_delete  # type: ignore[method-assign]
    spool = Spool(store, max_bytes=10**6)
    await spool.start()
    spooled = await spool.append(make(A, 3))
    removing = asyncio.create_task(spool.remove(spooled[:1]))
    assert await asyncio.to_thread(in_job.wait, 5)
    removing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await removing
    release.set()
    await spool.prune()  # a later store job: the earlier one's effect is applied before its own
    assert spool.pending_events == 2
    await spool.stop()


async def test_the_caller_resumes_before_the_work_its_commit_wakes_downstream(spool: Spool) -> None:
    """An acknowledgement does not wait behind delivery: the appending caller runs again before anything the
    downstream schedules on hearing of the commit (the dispatcher's turn), and the downstream has heard of the events
    by the time the caller runs."""
    order: list[str] = []

    class Waking(Recorder):
        """Schedules a turn of its own on every append, as the dispatcher does."""

        def appended(self, events: Sequence[SpooledEvent]) -> None:  # type: ignore[override]
            """Record, then wake a task."""
            super().appended(events)
            asyncio.get_running_loop().call_soon(order.append, "downstream's turn")

    heard = Waking()
    spool.subscribe(heard)
    spooled = await spool.append(make(A, 2))
    order.append("caller")
    assert heard.groups == [[event.seq for event in spooled]]
    await asyncio.sleep(0)
    assert order == ["caller", "downstream's turn"]


async def test_a_failing_downstream_does_not_break_the_commit(spool: Spool) -> None:
    """A downstream that raises is logged; the append is still acknowledged and counted."""

    class Broken(Recorder):
        """Raises on every append."""

        def appended(self, events: Sequence[SpooledEvent]) -> None:  # type: ignore[override]
            """A bug."""
            raise RuntimeError("listener bug")

    spool.subscribe(Broken())
    with capture_logs() as logs:
        spooled = await spool.append(make(A, 1))
    assert spooled[0].seq == 1 and spool.pending_events == 1
    assert [e["event"] for e in logs] == ["spool_listener_failed"]


async def test_reads_return_one_keys_events_within_both_budgets(spool: Spool) -> None:
    """read() returns only the key's events after the cursor, in order, at most max_events, and stops before the
    bytes would exceed max_bytes; one event larger than the budget is still returned alone."""
    spooled = await spool.append(interleaved(40))  # A: odd seqs, B: even seqs, 10 bytes each
    a_seqs = [e.seq for e in spooled if e.shard == A]
    got = await spool.read(A, 0, 10**6, 2_500)
    assert [e.seq for e in got] == a_seqs
    assert [(e.message_id, e.payload, e.accepted_at) for e in got] == [
        (e.message_id, e.payload, e.accepted_at) for e in spooled if e.shard == A
    ]
    assert all(e.shard == A for e in got)
    assert [e.seq for e in await spool.read(A, a_seqs[4], 10**6, 3)] == a_seqs[5:8]
    assert [e.seq for e in await spool.read(A, 0, 55, 100)] == a_seqs[:5], "50 bytes fit, a sixth would exceed 55"
    assert [e.seq for e in await spool.read(A, 0, 50, 100)] == a_seqs[:5], "exactly the budget is allowed"
    assert [e.seq for e in await spool.read(A, 0, 3, 100)] == a_seqs[:1], "at least one event"
    assert await spool.read(A, a_seqs[-1], 10**6, 100) == []
    assert await spool.read(A_EU, 0, 10**6, 100) == []


async def test_reads_of_varied_sizes_stop_at_the_budget(spool: Spool) -> None:
    """With payload sizes that mislead the store's rows-per-budget guess, reads still stop exactly at the budget."""
    sizes = [1, 500, 3, 3, 3, 900, 2, 2, 2, 2, 2, 2, 2, 2, 700]
    spooled = await spool.append([make(A, 1, size=size, start=i)[0] for i, size in enumerate(sizes)])
    after = 0
    chunks: list[list[int]] = []
    while True:
        got = await spool.read(A, after, 1_000, 2_500)
        if not got:
            break
        assert sum(len(e.payload) for e in got) <= 1_000 or len(got) == 1
        chunks.append([len(e.payload) for e in got])
        after = got[-1].seq
    assert chunks == [[1, 500, 3, 3, 3], [900, 2, 2, 2, 2, 2, 2, 2, 2], [700]]
    assert after == spooled[-1].seq


async def test_appends_during_reads_are_neither_lost_nor_repeated(spool: Spool) -> None:
    """A reader that follows its cursor while appends and removals go on sees every event of its key exactly once."""
    total = 600
    done = asyncio.Event()

    async def writer() -> None:
        for start in range(0, total, 20):
            await spool.append(make(A, 20, start=start) + make(B, 3, start=start))
        done.set()

    seen: list[int] = []

    async def reader() -> None:
        after = 0
        while len(seen) < total:
            got = await spool.read(A, after, 150, 7)
            if not got:
                assert not done.is_set() or len(seen) == total, "events went missing"
                await asyncio.sleep(0.001)
                continue
            seen.extend(e.seq for e in got)
            after = got[-1].seq
            await spool.remove(got)

    await asyncio.wait_for(asyncio.gather(writer(), reader()), 30)
    assert len(seen) == total == len(set(seen))
    assert seen == sorted(seen)
    assert spool.pending_events == 90 and spool.pending_bytes == 900


async def test_recovery_reports_every_keys_backlog(open_spool: Callable[[], Spool], tmp_path: Path) -> None:
    """A restarted disk spool tells its downstream each key's backlog (count, bytes, oldest and its time) and the
    last seq; the memory spool starts empty."""
    first = open_spool()
    await first.start()
    spooled = await first.append(interleaved(8) + make(A_EU, 2, size=4, at=500.0))
    await first.remove([e for e in spooled if e.shard == A][:2])
    await first.stop()
    again = open_spool()
    heard = Recorder()
    again.subscribe(heard)
    assert heard.backlogs is None, "told only once the store is open"
    await again.start()
    try:
        if isinstance(again._store, MemoryStore):
            assert heard.backlogs == {} and heard.last_seq == 0
            return
        expected = {A: Backlog(2, 20, 5, 104.0), B: Backlog(4, 40, 2, 101.0), A_EU: Backlog(2, 8, 9, 500.0)}
        assert heard.backlogs == expected and heard.last_seq == 10
        assert again.pending_events == 8 and again.pending_bytes == 68
        assert [e.seq for e in await again.read(A, 0, 10**6, 100)] == [5, 7]
    finally:
        await again.stop()


async def test_replayed_dead_letters_rejoin_the_queue_and_the_downstream_is_told(tmp_path: Path) -> None:
    """A replay puts the dead letters back in the queue under new seqs, and the downstream hears it."""
    spool = Spool(SqliteStore(tmp_path), max_bytes=10**6)
    await spool.start()
    spooled = await spool.append(make(A, 2))
    assert await spool.dead_letter(spooled, "refused", "HTTP 400") == {}
    heard = Recorder()
    spool.subscribe(heard)
    assert mark_for_replay(tmp_path) == 2
    assert await spool.take_replays() == 2
    assert heard.groups == [[3, 4]] and spool.pending_events == 2
    assert [e.message_id for e in await spool.read(A, 0, 10**6, 10)] == [e.message_id for e in spooled]
    await spool.stop()


def test_a_key_read_uses_the_index_not_a_scan(tmp_path: Path) -> None:
    """SQLite's plan for a per-key read searches the index on (key_id, seq) rather than scanning events."""
    store = SqliteStore(tmp_path)
    store.open()
    try:
        db = sqlite3.connect(store.path)
        plan = " ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + _READ_KEY, (1, 0, 10)))
        db.close()
    finally:
        store.close()
    assert "SEARCH events USING INDEX events_by_key" in plan, plan
    assert "SCAN events" not in plan, plan


async def test_read_is_refused_before_start(tmp_path: Path) -> None:
    """Reading a spool that is not open fails clearly instead of touching a closed store."""
    spool = Spool(SqliteStore(tmp_path), max_bytes=10**6)
    with pytest.raises(SpoolFailure):
        await spool.read(A, 0, 100, 10)
