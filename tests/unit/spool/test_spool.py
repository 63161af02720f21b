"""The spool: durable appends with group commit, recovery, dead letters, limits."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sidecar.errors import CapacityExhausted, SpoolFailure
from sidecar.model import Event, Region, SpooledEvent
from sidecar.spool import MemoryStore, Spool, SqliteStore
from sidecar.spool.offline import list_dead_letters, mark_for_replay
from sidecar.spool.store import Pruned


def events(n: int, start: int = 0, size: int = 100, key: str = "wk") -> list[Event]:
    """``n`` events of ``size`` bytes."""
    return [Event(key, Region.US, f"m{start + i}", b"x" * size, 1.0) for i in range(n)]


async def all_waiting(spool: Spool, keys: tuple[str, ...] = ("wk", "wk0", "wk1", "wk2")) -> list[SpooledEvent]:
    """Every event of ``keys`` waiting in the spool, each key's read from the store's index, in seq order."""
    found = [event for key in keys for region in Region for event in await spool.read((key, region), 0, 10**9, 10**9)]
    return sorted(found, key=lambda event: event.seq)


async def test_appends_survive_a_restart_with_their_message_ids(tmp_path: Path) -> None:
    """What was acknowledged is found again, in order, by a new spool on the same folder."""
    spool = Spool(SqliteStore(tmp_path), max_bytes=10**6)
    await spool.start()
    spooled = await spool.append(events(10))
    assert [e.seq for e in spooled] == list(range(1, 11))
    await spool.remove(spooled[:3])
    await spool.stop()
    again = Spool(SqliteStore(tmp_path), max_bytes=10**6)
    await again.start()
    assert again.recovered == 7
    taken = await all_waiting(again)
    assert [e.message_id for e in taken] == [f"m{i}" for i in range(3, 10)]
    assert (await again.append(events(1, start=99)))[0].seq == 11, "seqs are never reused"
    await again.stop()


async def test_commits_of_every_size_are_stored_whole_and_in_order(tmp_path: Path) -> None:
    """One-statement inserts pad to a few sizes, and split past 1,024 rows: every event comes back, byte for byte."""
    sizes = (1, 2, 3, 5, 16, 17, 257, 769, 1024, 1025, 2600)
    sent: list[Event] = []
    spool = Spool(SqliteStore(tmp_path), max_bytes=10**8)
    await spool.start()
    for size in sizes:
        batch = [
            Event(f"wk{i % 3}", Region.EU, f"m{len(sent) + i}", b"p%d" % (len(sent) + i), 2.5) for i in range(size)
        ]
        sent.extend(await spool.append(batch))
    await spool.stop()
    again = Spool(SqliteStore(tmp_path), max_bytes=10**8)
    await again.start()
    assert again.recovered == sum(sizes)
    found = await all_waiting(again)
    await again.stop()
    assert [(e.seq, e.write_key, e.region, e.message_id, e.payload, e.accepted_at) for e in found] == [
        (e.seq, e.write_key, e.region, e.message_id, e.payload, e.accepted_at) for e in sent
    ]


async def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    """Many concurrent appends are committed in fewer transactions than calls (group commit)."""
    store = SqliteStore(tmp_path)
    commits = 0
    insert = store.insert

    def counting_insert(batch: list) -> None:  # type: ignore[type-arg]
        nonlocal commits
        commits += 1
        insert(batch)

    store.insert = counting_insert  # type: ignore[method-assign]
    spool = Spool(store, max_bytes=10**7)
    await spool.start()
    await asyncio.gather(*(spool.append(events(1, start=i)) for i in range(200)))
    await spool.stop()
    assert spool.appended_total == 200
    assert commits < 100


async def test_a_lone_commit_never_shares_the_connection_with_a_store_job(tmp_path: Path) -> None:
    """A lone append commits on the loop only while the store's thread is idle, even when the caller of the job
    running there stopped waiting for it (a Flush deadline): otherwise two threads would use one connection."""
    store = SqliteStore(tmp_path)
    in_job, release = threading.Event(), threading.Event()
    prune = store.prune

    def slow_prune(max_dead_bytes: int, dead_before: float) -> Pruned:
        in_job.set()
        release.wait(5)
        return prune(max_dead_bytes, dead_before)

    store.prune = slow_prune  # type: ignore[method-assign]
    spool = Spool(store, max_bytes=10**6)
    await spool.start()
    pruning = asyncio.create_task(spool.prune())
    assert await asyncio.to_thread(in_job.wait, 5)
    pruning.cancel()
    append = asyncio.create_task(spool.append(events(1)))
    for _ in range(5):  # loop turns enough for a commit on the loop to finish; one behind the job cannot
        await asyncio.sleep(0)
    assert not append.done(), "the append must queue behind the job, not commit beside it"
    release.set()
    await asyncio.wait_for(append, 5)
    assert [e.message_id for e in await all_waiting(spool)] == ["m0"]
    await spool.stop()


async def test_a_full_spool_refuses_with_a_retry_delay(tmp_path: Path) -> None:
    """Past SIDECAR_SPOOL_MAX_BYTES an append fails with CapacityExhausted; delivery frees the space."""
    spool = Spool(MemoryStore(), max_bytes=1_000)
    await spool.start()
    first = await spool.append(events(9))
    with pytest.raises(CapacityExhausted) as raised:
        await spool.append(events(2, start=9))
    assert raised.value.retry_after > 0
    await spool.remove(first)
    await spool.append(events(2, start=9))
    await spool.stop()


async def test_dead_letters_are_listed_and_replayed(tmp_path: Path) -> None:
    """A dead letter keeps its reason and Segment's answer; replay puts it back in the queue with a new seq."""
    spool = Spool(SqliteStore(tmp_path), max_bytes=10**6)
    await spool.start()
    spooled = await spool.append(events(2))
    await spool.dead_letter(spooled[:1], "Segment refused the event", 'HTTP 400: {"code":"invalid_event"}')
    letters = list(list_dead_letters(tmp_path))
    assert [(d.event.message_id, d.reason) for d in letters] == [("m0", "Segment refused the event")]
    assert mark_for_replay(tmp_path) == 1
    assert await spool.take_replays() == 1
    replayed = await all_waiting(spool)
    assert [(e.message_id, e.seq) for e in replayed] == [("m1", 2), ("m0", 3)]
    assert list(list_dead_letters(tmp_path)) == []
    await spool.stop()


async def test_a_replayed_dead_letter_is_accepted_anew(tmp_path: Path) -> None:
    """A replay is a person's decision: the replayed event's age starts again (a fresh accepted_at), so one that died
    older than SIDECAR_MAX_EVENT_AGE is sent rather than expired again; the untouched event keeps its own time."""
    spool = Spool(SqliteStore(tmp_path), max_bytes=10**6)
    await spool.start()
    spooled = await spool.append(events(2))  # accepted at 1.0: decades old
    await spool.dead_letter(spooled[:1], "Segment refused the event", "HTTP 400")
    assert mark_for_replay(tmp_path) == 1
    before = time.time()
    assert await spool.take_replays() == 1
    replayed = {e.message_id: e.accepted_at for e in await all_waiting(spool)}
    await spool.stop()
    assert replayed["m1"] == 1.0
    assert before <= replayed["m0"] <= time.time()


async def test_one_spool_folder_serves_one_sidecar(tmp_path: Path) -> None:
    """A second spool on a folder in use fails clearly instead of corrupting the first."""
    first = Spool(SqliteStore(tmp_path), max_bytes=10**6)
    await first.start()
    second = Spool(SqliteStore(tmp_path), max_bytes=10**6)
    with pytest.raises(SpoolFailure, match="in use"):
        await second.start()
    await second.stop()
    await first.stop()


async def test_a_failing_disk_refuses_the_call_and_keeps_running(tmp_path: Path) -> None:
    """When the disk write fails the call gets SpoolFailure (UNAVAILABLE), and later appends work again."""
    store = SqliteStore(tmp_path)
    spool = Spool(store, max_bytes=10**6)
    await spool.start()
    insert = store.insert
    store.insert = lambda batch: (_ for _ in ()).throw(SpoolFailure("spool write failed: disk I/O error"))  # type: ignore[method-assign]
    with pytest.raises(SpoolFailure):
        await spool.append(events(1))
    assert spool.pending_events == 0
    store.insert = insert  # type: ignore[method-assign]
    await spool.append(events(1, start=1))
    assert [e.message_id for e in await all_waiting(spool)] == ["m1"]
    await spool.stop()


async def test_stop_is_idempotent_and_safe_without_start(tmp_path: Path) -> None:
    """stop() twice, or without start(), does nothing harmful."""
    spool = Spool(SqliteStore(tmp_path), max_bytes=10**6)
    await spool.stop()
    await spool.start()
    await spool.stop()
    await spool.stop()


async def test_replays_during_appends_never_reuse_a_seq(tmp_path: Path) -> None:
    """Dead letters replayed while appends go on keep every acknowledged event: the writer alone numbers events, so a
    replay and an append never get the same seq (or one would overwrite the other)."""
    spool = Spool(SqliteStore(tmp_path), max_bytes=10**7)
    await spool.start()
    dead = await spool.append(events(20, start=1000))
    await spool.dead_letter(dead, "refused", "HTTP 400")
    acknowledged = {e.message_id for e in dead}
    for round_ in range(4):
        assert mark_for_replay(tmp_path) == len(dead)
        appends = [spool.append(events(5, start=round_ * 100 + i * 5)) for i in range(10)]
        results = await asyncio.gather(spool.take_replays(), *appends)
        assert results[0] == len(dead)
        for spooled in results[1:]:
            acknowledged.update(e.message_id for e in spooled)
        waiting = await spool.read(("wk", Region.US), 0, 10**7, 10**6)
        dead = [e for e in waiting if int(e.message_id[1:]) >= 1000]
        await spool.dead_letter(dead, "refused again", "HTTP 400")
    await spool.append(events(5, start=900))
    acknowledged.update(f"m{i}" for i in range(900, 905))
    last = spool.last_seq
    await spool.stop()
    again = Spool(SqliteStore(tmp_path), max_bytes=10**7)
    await again.start()
    assert again.last_seq >= last, "the counter never moves backwards"
    pending = await all_waiting(again)
    found = [e.message_id for e in pending] + [d.event.message_id for d in list_dead_letters(tmp_path)]
    assert sorted(found) == sorted(acknowledged), "every acknowledged event is pending or dead-lettered, once"
    seqs = [e.seq for e in pending] + [d.event.seq for d in list_dead_letters(tmp_path)]
    assert len(seqs) == len(set(seqs))
    await again.stop()


def folder_bytes(folder: Path) -> int:
    """What the spool's files occupy (their sizes), as a volume's size limit counts them."""
    return sum(path.stat().st_size for path in folder.iterdir())


async def test_disk_use_stays_within_the_bound_whatever_the_write_keys(tmp_path: Path) -> None:
    """SIDECAR_SPOOL_MAX_BYTES bounds the files on disk: events with 1 MiB write keys fill the spool by their keys
    (each stored once) and are refused with a retry delay past the bound (issue 13.4: 20 such events took 29 MiB)."""
    bound = 8 * 2**20
    spool = Spool(SqliteStore(tmp_path), max_bytes=bound)
    await spool.start()
    accepted = refused = 0
    delays: set[float] = set()
    for i in range(20):
        key = chr(ord("a") + i) * 2**20  # a new 1 MiB write key each time
        try:
            await spool.append([Event(key, Region.US, f"m{i}", b"{}", 1.0)])
            accepted += 1
        except CapacityExhausted as exc:
            delays.add(exc.retry_after)
            refused += 1
        assert folder_bytes(tmp_path) <= bound
    assert delays and min(delays) > 0
    same_key = "z" * 2**20
    await spool.stop()
    assert refused > 0 and accepted >= 4
    other = tmp_path / "one-key"
    spool = Spool(SqliteStore(other), max_bytes=bound)
    await spool.start()
    for i in range(20):
        await spool.append([Event(same_key, Region.US, f"m{i}", b"{}", 1.0)])
    assert folder_bytes(other) < 3 * 2**20, "one key, stored once"
    assert spool.disk_bytes < 3 * 2**20
    await spool.stop()


async def test_dead_letters_beyond_their_bound_are_pruned_oldest_first(tmp_path: Path) -> None:
    """Past the dead letters' byte bound the oldest go first, each pruning logged and counted for the metrics."""
    spool = Spool(SqliteStore(tmp_path), max_bytes=10**8, dead_letter_max_bytes=2_000)
    await spool.start()
    spooled = await spool.append(events(30, size=100))
    with capture_logs() as logs:
        for start in range(0, 30, 5):
            await spool.dead_letter(spooled[start : start + 5], "refused", "HTTP 400")
    letters = list(list_dead_letters(tmp_path))
    kept = [d.event.message_id for d in letters]
    assert kept == [f"m{i}" for i in range(30 - len(kept), 30)], "the newest are kept"
    assert sum(len(d.event.payload) + 2 + 3 + 7 + 8 for d in letters) <= 2_000
    assert spool.dead_letters_pruned == 30 - len(kept) > 0
    assert spool.dead_letters_pruned_bytes > 0
    assert [entry["event"] for entry in logs if entry["event"] == "dead_letters_pruned"], logs
    await spool.stop()


class Wall:
    """A wall clock a test sets: the spool's ``wall`` (dead_at, and the age of dead letters)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        """Now, moved by ``offset`` seconds."""
        return time.time() + self.offset


async def test_dead_letters_past_their_age_are_pruned(tmp_path: Path) -> None:
    """Dead letters older than their maximum age are pruned by the next pass, and the folder forgets their key."""
    wall = Wall()
    spool = Spool(SqliteStore(tmp_path), max_bytes=10**8, dead_letter_max_age=3600.0, wall=wall)
    await spool.start()
    old = await spool.append(events(3, key="old-key"))
    recent = await spool.append(events(2, start=3))
    wall.offset = -7200
    await spool.dead_letter(old, "refused", "HTTP 400")
    wall.offset = 0
    await spool.dead_letter(recent, "refused", "HTTP 400")
    pruned = await spool.prune()
    assert (pruned.by_age, pruned.by_bytes, pruned.keys) == (3, 0, 1)
    assert [d.event.message_id for d in list_dead_letters(tmp_path)] == ["m3", "m4"]
    assert spool.dead_letters_pruned == 3
    assert (await spool.prune()).by_age == 0
    await spool.stop()


async def test_the_memory_spool_bounds_its_dead_letters_too() -> None:
    """The memory spool keeps dead letters within the same bound, oldest pruned first."""
    store = MemoryStore()
    spool = Spool(store, max_bytes=10**6, dead_letter_max_bytes=1_000)
    await spool.start()
    spooled = await spool.append(events(20, size=100))
    await spool.dead_letter(spooled, "refused", "HTTP 400")
    assert [d.event.message_id for d in store.dead_letters] == [f"m{i}" for i in range(12, 20)]
    assert spool.dead_letters_pruned == 12
    await spool.stop()


async def test_the_pruner_task_prunes_dead_letters_past_their_age_on_its_own(tmp_path: Path) -> None:
    """Without any call, the spool's pruner drops dead letters past their age at its next turn."""
    wall = Wall()
    spool = Spool(SqliteStore(tmp_path), max_bytes=10**8, dead_letter_max_age=3600.0, prune_interval=0.02, wall=wall)
    await spool.start()
    old = await spool.append(events(2))
    wall.offset = -7200
    await spool.dead_letter(old, "refused", "HTTP 400")
    wall.offset = 0

    async def pruned() -> None:
        while spool.dead_letters_pruned < 2:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(pruned(), 5)
    assert list(list_dead_letters(tmp_path)) == []
    await spool.stop()


async def test_reads_of_what_was_just_committed_need_no_store_read(tmp_path: Path) -> None:
    """Delivery's read of events committed in this run comes from the spool's read-ahead; a backlog found at start
    is read from the store."""
    store = SqliteStore(tmp_path)
    reads = 0
    read = store.read

    def counting_read(*args: object) -> list[SpooledEvent]:
        nonlocal reads
        reads += 1
        return read(*args)  # type: ignore[arg-type]

    store.read = counting_read  # type: ignore[method-assign]
    spool = Spool(store, max_bytes=10**7)
    await spool.start()
    spooled = await spool.append(events(5))
    assert await spool.read(("wk", Region.US), 0, 10**6, 100) == spooled
    await spool.remove(spooled[:2])
    assert await spool.read(("wk", Region.US), 0, 10**6, 100) == spooled[2:]
    assert reads == 0
    await spool.stop()
    again = Spool(SqliteStore(tmp_path), max_bytes=10**7)
    await again.start()
    assert [e.message_id for e in await again.read(("wk", Region.US), 0, 10**6, 100)] == ["m2", "m3", "m4"]
    await again.stop()


async def test_a_lone_commit_wakes_its_caller_in_the_next_loop_turn(tmp_path: Path) -> None:
    """The store's thread hands a commit back to the loop once, and the caller runs in the loop turn after that
    hand-off (no second wake-up, no turn spent resuming the writer task first)."""
    spool = Spool(SqliteStore(tmp_path), max_bytes=10**6)
    await spool.start()
    loop = asyncio.get_running_loop()
    turns = 0
    handed: list[int] = []  # the loop turn in which each callback from another thread ran

    async def ticker() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    threadsafe = loop.call_soon_threadsafe

    def counting(callback, *args):  # type: ignore[no-untyped-def]
        def run() -> None:
            handed.append(turns)
            callback(*args)

        return threadsafe(run)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        for n in range(5):
            handed.clear()
            await spool.append(events(1, start=n))
            returned = turns
            assert len(handed) == 1, "one hand-off from the store's thread per commit"
            assert returned - handed[0] <= 1
    finally:
        loop.call_soon_threadsafe = threadsafe  # type: ignore[method-assign]
        ticking.cancel()
    await spool.stop()


async def test_deleted_rows_are_zeroed_without_writing_the_pages_they_free(tmp_path: Path) -> None:
    """The spool's connection runs with secure_delete=FAST whatever SQLite's build default (ON writes every freed
    page again: about a fifth more bytes per event)."""
    store = SqliteStore(tmp_path)
    store.open()
    try:
        assert store._conn.execute("PRAGMA secure_delete").fetchone()[0] == 2
    finally:
        store.close()
