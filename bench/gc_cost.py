"""The garbage collector's CPU in the sidecar: ``.venv/bin/python bench/gc_cost.py [--base DIR] [--quick]``.

For each side, a sidecar on its defaults (disk spool) delivering to the local collector takes the events of
``cpu_per_event.py`` (about 300 B, 10 properties, one write key) and is flushed; every collection its garbage
collector makes meanwhile is timed (``bench/gc_hook``, loaded through ``PYTHONPATH``, so an older checkout is
measured the same way). Sides: ``batch`` (the Python client's Batcher, 1,000 events per call) and ``track`` (Track
calls, 8 in flight, a tenth of the events). Prints, per side and tree, the collections by generation, their CPU per
event and the longest pause, medians over rounds.

The figure is the collector's own time, which a whole-process CPU benchmark on a shared machine cannot resolve (a
microsecond in 35 moves less than the machine does). ``--base DIR`` (a checkout of an earlier commit) runs that
tree's sidecar too, alternating with this one's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import cpu_per_event  # noqa: E402
from bench.common import CollectorProcess, machine, sidecar, table  # noqa: E402

HOOK = ROOT / "bench" / "gc_hook"
PARTNERS = {"batch": cpu_per_event._partner_python_client, "track": cpu_per_event._partner_python_track}
TRACK_SHARE = 10
"""Track calls cost the sidecar about 25 times a Batch event each: a tenth of the events keeps the sides' times near."""


@dataclass(frozen=True)
class Collections:
    """What the hook counted in one run: per generation, collections and their seconds; the longest one."""

    collections: list[int]
    seconds: list[float]
    longest: float
    threshold: list[int]
    events: int


def measure(side: str, events: int, tree: Path) -> Collections:
    """One sidecar of ``tree`` taking ``events`` events on ``side``: the collector's totals meanwhile."""
    collector = CollectorProcess()
    collector.start()
    try:
        with tempfile.TemporaryDirectory(prefix="gc-cost-") as folder:
            report = Path(folder) / "gc.json"
            env = {
                "SIDECAR_ENDPOINT_US": collector.url,
                "SIDECAR_ENDPOINT_EU": collector.url,
                "PYTHONPATH": str(HOOK),
                "BENCH_GC_REPORT": str(report),
            }
            with sidecar(env, root=tree) as server:
                os.kill(server.pid, signal.SIGUSR1)  # from here on: what start-up collected is not counted
                time.sleep(0.2)
                cpu_per_event.run_python_partner(PARTNERS[side], server.address, events, tree)
                cpu_per_event.flush_sidecar(server.address)
                os.kill(server.pid, signal.SIGUSR2)
                deadline = time.monotonic() + 10
                while not report.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                totals = json.loads(report.read_text())
            if collector.wait_for(events, 60) < events:
                raise RuntimeError(f"{side}: not every event arrived")
            return Collections(totals["collections"], totals["seconds"], totals["longest"], totals["threshold"], events)
    finally:
        collector.dump_and_stop()


def main() -> None:
    """Parse arguments, run the rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3,000 events, one round")
    parser.add_argument("--events", type=int, default=100_000, help="Batch events per round (Track: a tenth)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sides", default="batch,track", help="comma-separated: batch, track")
    parser.add_argument("--base", type=Path, help="a checkout of an earlier commit, run in alternation")
    args = parser.parse_args()
    events, rounds = (3_000, 1) if args.quick else (args.events, args.rounds)
    trees = {"this tree": ROOT} | ({f"base ({args.base.name})": args.base} if args.base else {})
    sides = [side for side in args.sides.split(",") if side in PARTNERS]
    print(machine())
    print(f"{events:,} Batch events / {events // TRACK_SHARE:,} Track calls per round; {rounds} round(s)")
    results: dict[tuple[str, str], list[Collections]] = {}
    for round_number in range(rounds):
        for side in sides:
            for name, tree in trees.items():
                count = events if side == "batch" else events // TRACK_SHARE
                totals = measure(side, count, tree)
                results.setdefault((side, name), []).append(totals)
                print(f"  round {round_number + 1} {side} {name}: {totals}", flush=True)
    rows = []
    for (side, name), runs in results.items():
        count = runs[0].events
        collections = [sum(run.collections) for run in runs]
        seconds = [sum(run.seconds) for run in runs]
        longest = [run.longest for run in runs]
        rows.append(
            (
                side,
                name,
                f"{statistics.median(collections):,.0f}",
                f"{statistics.median(seconds) / count * 1e6:.2f}",
                f"{statistics.median(longest) * 1e3:.1f}",
                "/".join(map(str, runs[-1].threshold)),
            )
        )
    print(table(("side", "tree", "collections", "gc us per event", "longest pause ms", "thresholds"), rows))


if __name__ == "__main__":
    main()
