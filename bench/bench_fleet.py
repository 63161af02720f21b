"""The fleet's throughput under one shared cap: ``uv run python bench/bench_fleet.py [--sidecars 3] [--quick]``.

Starts a real ``redis-server`` (empty, nothing on disk) on a free loopback port, one local collector, and
``--sidecars`` processes of ``python -m sidecar serve`` sharing the Redis budget; sends each sidecar the same number
of events at once (far more than the cap lets through immediately), waits until the collector holds them all, and
prints:

* delivered events/s and HTTP requests/s of the whole fleet (first to last request at the collector);
* the most requests the collector saw start in any sliding one-second window, beside the cap and the guaranteed
  bound (:func:`sidecar.send.fleet.bound`);
* Redis round trips per HTTP request, counted by Redis itself (``INFO commandstats``: EVALSHA, SCRIPT LOAD, PING);
* each sidecar's share of the requests.

``--batch-events`` keeps batches small so that the cap, not the batch size, decides the throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.collector.server import Collector
from sidecar.send.fleet import bound


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_command(port: int, *args: str) -> bytes:
    """One RESP command over a plain socket; the whole reply (small replies only)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(payload)
        time.sleep(0.05)
        return conn.recv(1 << 20)


def redis_calls(port: int) -> dict[str, int]:
    """Calls per command since the server started, from INFO commandstats."""
    text = redis_command(port, "INFO", "commandstats").decode()
    return {name: int(calls) for name, calls in re.findall(r"cmdstat_([a-z|]+):calls=(\d+)", text)}


async def wait_serving(address: str, process: subprocess.Popen[bytes], limit: float = 90.0) -> None:
    """Poll the gRPC health service until the sidecar serves."""
    deadline = time.monotonic() + limit
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sidecar at {address} exited with {process.returncode}")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"sidecar at {address} not serving after {limit} s")
            await asyncio.sleep(0.05)


async def send(address: str, write_key: str, events: int) -> None:
    """Send ``events`` track events in Batch calls of 1,000."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)
        for start in range(0, events, 1000):
            batch = [
                pb.BatchEvent(
                    track=pb.TrackRequest(write_key=write_key, user_id=f"u{n % 97}", event="Widget Configured")
                )
                for n in range(start, min(events, start + 1000))
            ]
            reply = await stub.Batch(pb.BatchRequest(events=batch), timeout=30)
            if reply.rejected:
                raise RuntimeError(f"{reply.rejected} events rejected")


async def run(args: argparse.Namespace) -> None:
    """Start everything, drive the fleet, print the figures."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    folder = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    redis_port = free_port()
    redis_proc = subprocess.Popen(  # noqa: ASYNC220 - start-up, before anything is measured
        [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    collector = Collector(region="us", port=0, keep_events=False)
    await collector.start()
    sidecars: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for index in range(args.sidecars):
            address = f"127.0.0.1:{free_port()}"
            env = {
                **os.environ,
                "SIDECAR_LISTEN": address,
                "SIDECAR_ENDPOINT_US": collector.url,
                "SIDECAR_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "SIDECAR_SPOOL_DIR": str(folder / f"spool{index}"),
                "SIDECAR_INTEGRATION_NAME": "bench-fleet",
                "SIDECAR_METRICS_LISTEN": "off",
                "SIDECAR_MAX_REQUESTS_PER_SECOND": str(args.cap),
                "SIDECAR_FLEET_SIZE": str(args.sidecars),
                "SIDECAR_BATCH_MAX_EVENTS": str(args.batch_events),
                "SIDECAR_FLUSH_INTERVAL": "100ms",
                "SIDECAR_LOG_LEVEL": "warning",
                "SIDECAR_LOG_FORMAT": "json",
            }
            log = (folder / f"sidecar{index}.log").open("ab")
            process = subprocess.Popen(  # noqa: ASYNC220 - start-up, before anything is measured
                [sys.executable, "-m", "sidecar", "serve"], env=env, stdout=log, stderr=log
            )
            sidecars.append((address, process))
        for address, process in sidecars:
            await wait_serving(address, process)
        before = redis_calls(redis_port)
        total = args.events * args.sidecars
        began = time.monotonic()
        await asyncio.gather(*(send(address, f"wk-bench-{i}", args.events) for i, (address, _) in enumerate(sidecars)))
        accepted = time.monotonic() - began
        await collector.store.wait_until(lambda store: store.accepted_event_count >= total, timeout=3600)
        after = redis_calls(redis_port)
    finally:
        for _, process in sidecars:
            process.terminate()
        for _, process in sidecars:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        await collector.stop()
        redis_proc.kill()
        redis_proc.wait()
        shutil.rmtree(folder, ignore_errors=True)

    requests = collector.store.requests
    starts = sorted(request.started_at for request in requests)
    span = max(starts[-1] - starts[0], 1e-9)
    # The steady state: the middle 80% of the requests, without the ramp-up and the tail where sidecars run dry.
    low, high = starts[len(starts) // 10], starts[len(starts) * 9 // 10]
    steady = (len(starts) * 9 // 10 - len(starts) // 10) / max(high - low, 1e-9)
    trips = sum(after.get(name, 0) - before.get(name, 0) for name in ("evalsha", "script|load", "script", "ping"))
    per_key: dict[str | None, int] = {}
    for request in requests:
        per_key[request.write_key] = per_key.get(request.write_key, 0) + 1
    share = ", ".join(f"{count / len(requests):.0%}" for _, count in sorted(per_key.items(), key=lambda kv: str(kv[0])))
    print(f"sidecars {args.sidecars}, cap {args.cap}/s for the fleet, {args.batch_events} events per request")
    print(f"events {total} accepted in {accepted:.2f} s, delivered in {span:.2f} s of requests")
    print(f"delivered          {collector.store.accepted_event_count / span:10.0f} events/s")
    print(f"HTTP requests      {len(requests) / span:10.1f} requests/s  ({len(requests)} requests)")
    print(f"steady state       {steady:10.1f} requests/s  (middle 80% of the requests; pacing at {0.9 * args.cap:g}/s)")
    print(f"busiest 1 s window {collector.store.max_requests_in_window(1.0):10d} requests  "
          f"(cap {args.cap:g}, guaranteed bound {bound(args.cap)})")  # fmt: skip
    print(f"Redis round trips  {trips / max(1, len(requests)):10.3f} per HTTP request  ({trips} commands)")
    print(f"share per sidecar  {share}")


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sidecars", type=int, default=3)
    parser.add_argument("--cap", type=float, default=50.0, help="the fleet's cap, requests/s")
    parser.add_argument("--events", type=int, default=20_000, help="events per sidecar")
    parser.add_argument("--batch-events", type=int, default=100, help="SIDECAR_BATCH_MAX_EVENTS")
    parser.add_argument("--quick", action="store_true", help="5,000 events per sidecar")
    args = parser.parse_args()
    if args.quick:
        args.events = 5_000
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
