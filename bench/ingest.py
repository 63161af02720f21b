"""Benchmark 1, ingest: ``uv run python bench/ingest.py [--quick] [--loop uvloop] [--seconds S]``.

Events/s acknowledged, and p50/p99 call latency, through unary ``Track`` at concurrency 1, 16 and 64 and through
``Batch`` (100 and 1,000 events per call), for four servers driven by the same client processes in the same run:

* ``echo``: a do-nothing grpc.aio servicer (bench/echo_server.py), the ceiling of unary gRPC in Python here;
* ``floor``: the same servicer answering each call only once its request is committed to SQLite as the disk spool
  commits (WAL, synchronous=FULL, concurrent calls sharing a commit): the ceiling of any server that acknowledges
  only what is on this machine's disk, with nothing decoded, checked or enriched;
* ``disk``: the sidecar with its default disk spool (SQLite WAL, synchronous=FULL, group commit);
* ``memory``: the sidecar with ``SIDECAR_SPOOL=memory``.

Each server runs in its own process; the clients are two processes (one for concurrency 1), each with one grpc.aio
channel and ``concurrency / processes`` calls in flight. Delivery points at a closed port, so these figures are
ingest alone (failed attempts back off and cost nothing measurable); bench/end_to_end.py measures both together.
Ratios (``% echo``, ``x echo p99``) compare each other row with the echo row of the same call and concurrency.
``--quick`` is a smoke run of a few seconds (for CI).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import sys
import time
from array import array
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import echo_server, enriched_size, machine, percentile, sidecar, table, track_fields  # noqa: E402

# (call, events per call, concurrency)
FULL_MATRIX = [
    ("Track", 1, 1),
    ("Track", 1, 16),
    ("Track", 1, 64),
    ("Batch", 100, 1),
    ("Batch", 100, 16),
    ("Batch", 1000, 1),
    ("Batch", 1000, 4),
]
QUICK_MATRIX = [("Track", 1, 1), ("Track", 1, 16), ("Batch", 1000, 4)]


def _client(
    address: str, call: str, size: int, tasks: int, start_at: float, warmup: float, seconds: float, out: Any
) -> None:
    """One client process: ``tasks`` callers in a loop; sends back (calls, events, latencies) measured after warmup."""
    import grpc  # noqa: PLC0415
    import uvloop  # noqa: PLC0415

    from sidecar._proto import sidecar_pb2 as pb  # noqa: PLC0415
    from sidecar._proto import sidecar_pb2_grpc as pb_grpc  # noqa: PLC0415

    async def run() -> tuple[int, int, bytes]:
        options = [("grpc.max_send_message_length", 17 * 2**20)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            stub = pb_grpc.SidecarServiceStub(channel)  # type: ignore[no-untyped-call]
            if call == "Track":
                request: Any = pb.TrackRequest(**track_fields(0))
                method = stub.Track
            else:
                request = pb.BatchRequest(
                    events=[pb.BatchEvent(track=pb.TrackRequest(**track_fields(i))) for i in range(size)]
                )
                method = stub.Batch
            await method(request, timeout=30)  # connect before the clock starts
            measure_from = start_at + warmup
            stop_at = measure_from + seconds
            latencies = array("d")
            counted = [0]

            async def caller() -> None:
                while True:
                    started = time.monotonic()
                    if started >= stop_at:
                        return
                    response = await method(request, timeout=30)
                    ended = time.monotonic()
                    if call == "Batch" and response.rejected:
                        raise RuntimeError(f"{response.rejected} events rejected: {response.results[0]}")
                    if started >= measure_from and ended <= stop_at:
                        latencies.append(ended - started)
                        counted[0] += 1

            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
            await asyncio.gather(*(caller() for _ in range(tasks)))
            return counted[0], counted[0] * size, latencies.tobytes()

    out.put(uvloop.run(run()))


def measure(address: str, call: str, size: int, concurrency: int, warmup: float, seconds: float) -> dict[str, Any]:
    """Drive one server with one (call, size, concurrency) cell; return its figures."""
    context = multiprocessing.get_context("spawn")
    processes = 1 if concurrency == 1 else 2
    out = context.Queue()
    start_at = time.monotonic() + 2.0  # time for the spawned clients to import grpc and connect
    workers = [
        context.Process(
            target=_client,
            args=(address, call, size, concurrency // processes, start_at, warmup, seconds, out),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=start_at - time.monotonic() + warmup + seconds + 60) for _ in workers]
    for worker in workers:
        worker.join()
    calls = sum(r[0] for r in results)
    events = sum(r[1] for r in results)
    latencies: list[float] = []
    for _, _, raw in results:
        values = array("d")
        values.frombytes(raw)
        latencies.extend(values)
    latencies.sort()
    return {
        "calls_s": calls / seconds,
        "events_s": events / seconds,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def main() -> None:
    """Run the matrix against echo, floor, disk and memory; print one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: a few seconds, three cells")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per cell (default 5)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the servers' event loop")
    parser.add_argument(
        "--servers", default="echo,floor,disk,memory", help="comma-separated subset of echo,floor,disk,memory"
    )
    parser.add_argument(
        "--cells", help="only cells whose label ('Track 1 c16', 'Batch 1000 c4') has this, ending a word ('Track 1 c1')"
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        help="the sidecar's sys.setswitchinterval (default: what segment-sidecar serve sets)",
    )
    args = parser.parse_args()
    matrix = QUICK_MATRIX if args.quick else FULL_MATRIX
    if args.cells:
        wanted = re.compile(rf"{re.escape(args.cells)}\b")
        matrix = [cell for cell in matrix if wanted.search(f"{cell[0]} {cell[1]} c{cell[2]}")]
    seconds, warmup = (0.6, 0.3) if args.quick else (args.seconds, 1.0)
    print(f"machine: {machine()}; server loop: {args.loop}; event: {enriched_size()} bytes enriched")
    figures: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    for server_name in args.servers.split(","):
        if server_name in ("echo", "floor"):
            manager: Any = echo_server(args.loop, commit=server_name == "floor")
        else:
            manager = sidecar({"SIDECAR_SPOOL": server_name}, loop=args.loop, switch_interval=args.switch_interval)
        with manager as server:
            for call, size, concurrency in matrix:
                figures[(server_name, call, size, concurrency)] = measure(
                    server.address, call, size, concurrency, warmup, seconds
                )
                row = figures[(server_name, call, size, concurrency)]
                print(
                    f"  {server_name:6} {call} x{size} c{concurrency}: {row['events_s']:,.0f} events/s "
                    f"p50 {row['p50_ms']:.2f} ms p99 {row['p99_ms']:.2f} ms",
                    flush=True,
                )
    rows = []
    for (server_name, call, size, concurrency), row in figures.items():
        echo = figures.get(("echo", call, size, concurrency))
        versus = f"{row['calls_s'] / echo['calls_s']:.0%}" if echo and server_name != "echo" and echo["calls_s"] else ""
        p99_ratio = f"{row['p99_ms'] / echo['p99_ms']:.2f}" if echo and server_name != "echo" and echo["p99_ms"] else ""
        rows.append(
            [
                server_name,
                call if size == 1 else f"{call} x{size}",
                concurrency,
                f"{row['calls_s']:,.0f}",
                f"{row['events_s']:,.0f}",
                f"{row['p50_ms']:.2f}",
                f"{row['p99_ms']:.2f}",
                versus,
                p99_ratio,
            ]
        )
    print()
    print(
        table(
            [
                "server",
                "call",
                "concurrency",
                "calls/s",
                "events/s",
                "p50 ms",
                "p99 ms",
                "% echo calls/s",
                "x echo p99",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
