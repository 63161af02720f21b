"""The disk spool's own costs, alone and beside a busy Python thread: ``uv run python bench/bench_spool.py [--quick]``.

The spool's SQLite work runs on a thread of its own while the event loop thread runs Python. The sqlite3 module lets
go of the GIL inside each statement step and must win it back afterwards, so what a commit, a read or a delete costs
depends on how often it needs the GIL back while the loop is busy. This prints, for ``SqliteStore`` on a temporary
folder: milliseconds per commit of 1, 10 and 1,000 events, per read of ~950 KB (``load``, ``load_shard``) and per
delete of one key's 1,000 interleaved events, first alone, then while a second thread spins in Python (the busy event
loop's stand-in). The GIL switch interval is the one ``segment-sidecar serve`` sets.
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
sys.path.insert(0, str(ROOT))

from bench.common import machine, table  # noqa: E402
from sidecar.__main__ import GIL_SWITCH_INTERVAL  # noqa: E402
from sidecar.model import Event, Region  # noqa: E402
from sidecar.spool import SqliteStore  # noqa: E402

PAYLOAD = b"x" * 437
KEYS = 100


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
        for count in (1, 10, 1000):
            batches = iter([events(count) for _ in range(rounds)])
            figures.append(timed(lambda batches=batches: store.insert(next(batches)), rounds))
        figures.append(timed(lambda: store.load(0, 950_000), 5))
        figures.append(timed(lambda: store.load_shard("wk7", Region.US, 0, 950_000), 5))
        keys = iter(range(KEYS))
        figures.append(
            timed(lambda: store.delete([e.seq for e in store.load_shard(f"wk{next(keys)}", Region.US, 0, 10**9)]), 5)
        )
    store.close()
    return ["busy thread" if busy else "alone", *(f"{ms:.2f}" for ms in figures)]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a few seconds)")
    args = parser.parse_args()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    print(f"machine: {machine()}; GIL switch interval {GIL_SWITCH_INTERVAL * 1000:g} ms; ms per operation")
    header = [
        "while",
        "commit 1",
        "commit 10",
        "commit 1,000",
        "load ~950 KB",
        "load_shard ~950 KB",
        "delete one key's events",
    ]
    print(table(header, [measure(False, args.quick), measure(True, args.quick)]))


if __name__ == "__main__":
    main()
