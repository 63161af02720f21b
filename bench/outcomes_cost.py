"""What the outcome log costs, side by side: ``.venv/bin/python bench/outcomes_cost.py [--events 100000]
[--base /tmp/base-tree] [--rounds 2] [--quick]`` (``--quick``: 5,000 events, one round, a smoke run).

Each run starts a sidecar process (``python -m sidecar serve`` from a source tree: this one, or ``--base``, a checkout
of the commit before the outcome log) with a disk spool, delivering to the local collector in a process of its own,
with ``SIDECAR_MAX_REQUESTS_PER_SECOND=1000`` so that delivery is bound by the sidecar's CPU rather than Segment's
cap (the cap would hide any cost). One client sends ``--events`` track events of about 430 bytes, one write key, in
Batch calls of 1,000 (two in flight), then waits until the collector has them all. Reported per variant: delivered
events/s (first call to last arrival), the sidecar's CPU microseconds per event (user + system from
``/proc/<pid>/stat`` before the first call and after the last arrival), and its peak RSS while sending and
delivering. Variants: ``base`` (no outcome log), ``log`` (the outcome log, nobody watching), ``stalled`` (a
``WatchOutcomes`` stream opened before the first call and never read). Variants alternate within each round, so that
the machine's load drifts across all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import CollectorProcess, RssSampler, free_port, machine, table, track_fields, wait_for_grpc  # noqa: E402

CALL_EVENTS = 1_000
IN_FLIGHT = 2


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _send(address: str, events: int, watch: bool) -> float:
    import grpc  # noqa: PLC0415

    from sidecar._proto import sidecar_pb2 as pb  # noqa: PLC0415
    from sidecar._proto import sidecar_pb2_grpc as pb_grpc  # noqa: PLC0415

    requests = [
        pb.BatchRequest(
            events=[
                pb.BatchEvent(track=pb.TrackRequest(**track_fields(i)))
                for i in range(start, min(events, start + CALL_EVENTS))
            ]
        )
        for start in range(0, events, CALL_EVENTS)
    ]
    async with grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", 17 * 2**20)]) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)  # type: ignore[no-untyped-call]
        stalled = stub.WatchOutcomes(pb.WatchOutcomesRequest()) if watch else None  # opened, never read
        queue = list(reversed(requests))
        started = time.monotonic()

        async def caller() -> None:
            while queue:
                await stub.Batch(queue.pop(), timeout=60)

        await asyncio.gather(*(caller() for _ in range(IN_FLIGHT)))
        if stalled is not None:
            stalled.cancel()
        return started


def run(tree: Path, variant: str, events: int) -> tuple[float, float, float]:
    """One run: (delivered events/s, CPU microseconds per event, peak RSS MB)."""
    collector = CollectorProcess()
    collector.start()
    with tempfile.TemporaryDirectory(prefix="outcomes-bench-") as folder:
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "SIDECAR_LISTEN": f"127.0.0.1:{port}",
            "SIDECAR_INTEGRATION_NAME": "acme-mail",
            "SIDECAR_SPOOL_DIR": str(Path(folder) / "spool"),
            "SIDECAR_ENDPOINT_US": collector.url,
            "SIDECAR_MAX_REQUESTS_PER_SECOND": "1000",
            "SIDECAR_LOG_LEVEL": "warning",
            "SIDECAR_LOG_FORMAT": "json",
            "SIDECAR_METRICS_LISTEN": "off",
        }
        with (Path(folder) / "log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "sidecar", "serve"], env=env, cwd=tree, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_grpc(f"127.0.0.1:{port}")
            before = _cpu_seconds(process.pid)
            with RssSampler(process.pid) as rss:
                started = asyncio.run(_send(f"127.0.0.1:{port}", events, variant == "stalled"))
                got = collector.wait_for(events, timeout=300)
                after = _cpu_seconds(process.pid)
            arrivals = collector.dump_and_stop()
            if got < events:
                raise RuntimeError(f"{variant}: only {got} of {events} events arrived")
            last = max(a[0] for a in arrivals if 200 <= a[2] < 300)
            return events / (last - started), (after - before) / events * 1e6, rss.peak_mb()
        finally:
            process.terminate()
            process.wait(30)


def main() -> None:
    """Run the variants in alternation and print a table of their medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--base", type=Path, help="a checkout of the commit before the outcome log")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 events, one round")
    args = parser.parse_args()
    if args.quick:
        args.events, args.rounds = 5_000, 1
    variants = (["base"] if args.base else []) + ["log", "stalled"]
    results: dict[str, list[tuple[float, float, float]]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant in variants:
            tree = args.base if variant == "base" else ROOT
            results[variant].append(run(tree, variant, args.events))
            print(variant, [round(x, 1) for x in results[variant][-1]], flush=True)
    rows = []
    for variant, runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rows.append([variant, f"{rate:,.0f}", f"{cpu:.0f}", f"{max(r[2] for r in runs):.0f}"])
    print(machine())
    print(table(["variant", "delivered events/s", "sidecar CPU µs/event", "peak RSS MB"], rows))


if __name__ == "__main__":
    main()
