"""The disk spool's own costs, alone and beside a busy Python thread: ``uv run python bench/bench_spool.py [--quick]``.

Second table (issue 12, the single-key drain target): on a backlog of 300,000 events of ~424 bytes (60,000 with
``--quick``), laid out as one write key or as 2,000 keys interleaved, the per-key read of one full batch (475,000
bytes / 2,500 events, ``SqliteStore.read`` on its read connection) and the delete of it, in milliseconds, and the
events/s one thread doing nothing else would drain at (events per batch / (read + delete)). The target: one key at
>= 80% of 50 x floor(475,000 / 424) = 56,100 events/s, i.e. a ~475 KB read and delete every 20 ms.

The spool's SQLite work runs on a thread of its own while the event loop thread runs Python. The sqlite3 module lets
go of the GIL inside each statement step and must win it back afterwards, so what a commit, a read or a delete costs
depends on how often it needs the GIL back while the loop is busy. This prints, for ``SqliteStore`` on a temporary
folder: milliseconds per commit of 1, 10, 300 and 1,000 events, per read of ~950 KB (``load``, ``read`` of one key)
and per delete of one key's 1,000 interleaved events, first alone, then while a second thread spins in Python (the
busy event loop's stand-in). The GIL switch interval is the one ``segment-sidecar serve`` sets.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# --tree is read before argparse runs: it decides which checkout's sidecar package the imports below load.
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]) if "--tree" in sys.argv[:-1] else ROOT
sys.path.insert(0, str(TREE))

from bench.common import machine, table  # noqa: E402
from sidecar.__main__ import GIL_SWITCH_INTERVAL  # noqa: E402
from sidecar.model import Event, Region  # noqa: E402
from sidecar.spool import SqliteStore  # noqa: E402

PAYLOAD = b"x" * 437
KEYS = 100
DRAIN_PAYLOAD = b"y" * 424
BATCH_BYTES = 475_000
BATCH_EVENTS = 2_500


@contextmanager
def busy_thread(enabled: bool) -> Iterator[None]:
    """A thread that runs Python without pause, as the event loop does under load."""
    stop = threading.Event()

    def spin() -> None:
        count = 0
        while not stop.is_set():
            count += 1

    thread = threading.Thread(target=spin, daemon=True)
    if enabled:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if enabled:
            thread.join()


def timed(action: Callable[[], object], rounds: int) -> float:
    """Mean milliseconds of ``action`` over ``rounds`` calls."""
    started = time.perf_counter()
    for _ in range(rounds):
        action()
    return (time.perf_counter() - started) / rounds * 1000


def measure(busy: bool, quick: bool) -> list[str]:
    """One row of the table: every operation, with or without the busy thread."""
    store = SqliteStore(Path(tempfile.mkdtemp(prefix="bench-spool-")))
    store.open()
    seq = 0

    def events(count: int) -> list[Event]:
        nonlocal seq
        made = [
            Event(f"wk{(seq + i) % KEYS}", Region.US, f"m{seq + i}", PAYLOAD, 1.0, seq + i + 1) for i in range(count)
        ]
        seq += count
        return made

    rounds = 20 if quick else 100
    figures = []
    with busy_thread(busy):
        for count in (1, 10, 300, 1000):
            batches = iter([events(count) for _ in range(rounds)])
            figures.append(timed(lambda batches=batches: store.insert(next(batches)), rounds))
        figures.append(timed(lambda: store.load(0, 950_000), 5))
        figures.append(timed(lambda: store.read(("wk7", Region.US), 0, 950_000, 10**6), 5))
        keys = iter(range(KEYS))
        figures.append(
            timed(lambda: store.delete([e.seq for e in store.read((f"wk{next(keys)}", Region.US), 0, 10**9, 10**9)]), 5)
        )
    store.close()
    return ["busy thread" if busy else "alone", *(f"{ms:.2f}" for ms in figures)]


def drain(layout_keys: int, busy: bool, quick: bool) -> list[str]:
    """One row of the drain table: a backlog in one layout, drained batch by batch (read, then delete) for a while."""
    total = 60_000 if quick else 300_000
    store = SqliteStore(Path(tempfile.mkdtemp(prefix="bench-spool-drain-")))
    store.open()
    keys = [(f"write-key-{k:05d}", Region.US) for k in range(layout_keys)]
    step = 1024
    for start in range(0, total, step):
        store.insert(
            [
                Event(*keys[seq % layout_keys], f"m{seq}", DRAIN_PAYLOAD, 1.0, seq + 1)
                for seq in range(start, min(total, start + step))
            ]
        )
    reads: list[float] = []
    deletes: list[float] = []
    drained = 0
    rounds = 10 if quick else 40
    with busy_thread(busy):
        for turn in range(rounds):
            key = keys[turn % layout_keys]
            started = time.perf_counter()
            batch = store.read(key, 0, BATCH_BYTES, BATCH_EVENTS)
            read_at = time.perf_counter()
            store.delete([event.seq for event in batch])
            deleted_at = time.perf_counter()
            reads.append(read_at - started)
            deletes.append(deleted_at - read_at)
            drained += len(batch)
    store.close()
    read_ms = sum(reads) / rounds * 1000
    delete_ms = sum(deletes) / rounds * 1000
    per_batch = drained / rounds
    rate = drained / (sum(reads) + sum(deletes))
    return [
        f"{layout_keys:,} key{'s' if layout_keys > 1 else ''}, {'busy thread' if busy else 'alone'}",
        f"{per_batch:,.0f}",
        f"{read_ms:.2f}",
        f"{delete_ms:.2f}",
        f"{rate:,.0f}",
    ]


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a few seconds)")
    parser.add_argument(
        "--tree",
        type=Path,
        default=ROOT,
        help="measure the store of another checkout (before/after: run once with, once without, in alternation)",
    )
    args = parser.parse_args()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    print(f"machine: {machine()}; GIL switch interval {GIL_SWITCH_INTERVAL * 1000:g} ms; ms per operation; {TREE}")
    header = [
        "while",
        "commit 1",
        "commit 10",
        "commit 300",
        "commit 1,000",
        "load ~950 KB",
        "read (one key) ~950 KB",
        "delete one key's events",
    ]
    print(table(header, [measure(False, args.quick), measure(True, args.quick)]))
    print()
    print(f"per-key drain on a {'60,000' if args.quick else '300,000'}-event backlog; ms per batch")
    rows = [drain(keys, busy, args.quick) for keys in (1, 2_000) for busy in (False, True)]
    print(table(["layout, while", "events per batch", "read", "delete", "events/s (read + delete)"], rows))


if __name__ == "__main__":
    main()
