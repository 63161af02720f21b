"""One tier against two: ``uv run python bench/fleet_tiers.py [--keys 300 3000] [--seconds 30] [--quick]``.

For each key count K, runs the same trickle traffic twice against one local collector and one ``redis-server``:

* **one tier**: P = 3 sidecars sharing the cap through Redis, each delivering its own events to Segment (today's
  per-pod delivery);
* **two tiers**: the same 3 sidecars as edges (``SIDECAR_FORWARD_TO``) forwarding by write key to 2 gateways, which
  share the cap through Redis and deliver.

Trickle traffic: every ``tick`` seconds each of the 3 sidecars receives one event of every key (so every key has
events on every pod, a few at a time), for ``--seconds``; then the bench waits up to ``--drain`` seconds for the
collector to hold everything. It prints, per run: the requests the collector received, requests per key per tick
(the minimum is 1 once every key has waited its flush interval: one request carries the key's events from all pods),
events per request, the worst wait of a key's oldest event (from the event's timestamp, set when a sidecar accepted
it, to the start of the request that delivered it; an event still undelivered at the end counts with its age then,
marked ``>=``), and the busiest one-second window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from bench.bench_fleet import free_port, wait_serving  # noqa: E402
from bench.common import machine, table  # noqa: E402
from sidecar._proto import sidecar_pb2 as pb  # noqa: E402
from sidecar._proto import sidecar_pb2_grpc as pb_grpc  # noqa: E402
from sidecar.collector.server import Collector  # noqa: E402

PODS = 3
GATEWAYS = 2


@dataclass
class Result:
    """What one run measured."""

    mode: str
    keys: int
    ticks: int
    sent: int
    delivered: int
    requests: int
    worst_wait: float
    undelivered_wait: float
    busiest: int


def parse_stamp(text: str) -> float:
    """An event's ISO timestamp as Unix seconds."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@contextlib.asynccontextmanager
async def processes(envs: list[dict[str, str]], folder: Path) -> AsyncIterator[list[str]]:
    """Start one ``python -m sidecar serve`` per environment; yield their addresses once all serve."""
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for index, env in enumerate(envs):
            address = env["SIDECAR_LISTEN"]
            log = (folder / f"process{index}.log").open("ab")
            process = subprocess.Popen(  # noqa: ASYNC220 - start-up, before anything is measured
                [sys.executable, "-m", "sidecar", "serve"], env={**os.environ, **env}, stdout=log, stderr=log
            )
            started.append((address, process))
        for address, process in started:
            await wait_serving(address, process)
        yield [address for address, _ in started]
    finally:
        for _, process in started:
            process.kill()
        for _, process in started:
            process.wait()


def base_env(folder: Path, name: str, cap: float) -> dict[str, str]:
    """Settings every process of a run shares."""
    return {
        "SIDECAR_LISTEN": f"127.0.0.1:{free_port()}",
        "SIDECAR_SPOOL_DIR": str(folder / name),
        "SIDECAR_INTEGRATION_NAME": "bench-tiers",
        "SIDECAR_MAX_REQUESTS_PER_SECOND": str(cap),
        "SIDECAR_LOG_LEVEL": "warning",
        "SIDECAR_LOG_FORMAT": "json",
        "SIDECAR_METRICS_LISTEN": "off",  # five processes: the default 127.0.0.1:9464 would be taken after the first
    }


async def trickle(addresses: list[str], keys: int, tick: float, seconds: float) -> list[float]:
    """Every ``tick`` s, one event of every key to every address, for ``seconds``; returns each tick's wall time.

    Message ids are ``t<tick>-p<pod>-k<key>``, so that the events still missing at the end can be named."""
    channels = [grpc.aio.insecure_channel(address) for address in addresses]
    stubs = [pb_grpc.SidecarServiceStub(channel) for channel in channels]  # type: ignore[no-untyped-call]
    sent_at: list[float] = []
    began = time.monotonic()
    try:
        while time.monotonic() - began < seconds:
            ticks = len(sent_at)
            await asyncio.sleep(max(0.0, began + ticks * tick - time.monotonic()))
            sent_at.append(time.time())
            for start in range(0, keys, 1000):
                calls = []
                for pod, stub in enumerate(stubs):
                    batch = pb.BatchRequest(
                        events=[
                            pb.BatchEvent(
                                track=pb.TrackRequest(write_key=f"wk-{k:05d}", user_id=f"u{k}", event="Widget Set",
                                                      message_id=f"t{ticks}-p{pod}-k{k}")
                            )
                            for k in range(start, min(keys, start + 1000))
                        ]
                    )  # fmt: skip
                    calls.append(stub.Batch(batch, timeout=30))
                for reply in await asyncio.gather(*calls):
                    if reply.rejected:
                        raise RuntimeError(f"{reply.rejected} events rejected")
    finally:
        for channel in channels:
            await channel.close(None)
    return sent_at


async def run_once(mode: str, keys: int, args: argparse.Namespace, redis_url: str) -> Result:
    """One run (``one tier`` or ``two tiers``) of the trickle for ``keys`` keys."""
    folder = Path(tempfile.mkdtemp(prefix="bench-tiers-"))
    collector = Collector(region="us", port=0)
    await collector.start()
    token = secrets.token_urlsafe(16)
    try:
        if mode == "one tier":
            envs = [
                {
                    **base_env(folder, f"pod{i}", args.cap),
                    "SIDECAR_ENDPOINT_US": collector.url,
                    "SIDECAR_REDIS_URL": redis_url,
                    "SIDECAR_FLEET_SIZE": str(PODS),
                }
                for i in range(PODS)
            ]
            fronts = slice(0, PODS)
        else:
            gateways = [
                {
                    **base_env(folder, f"gateway{i}", args.cap),
                    "SIDECAR_ENDPOINT_US": collector.url,
                    "SIDECAR_REDIS_URL": redis_url,
                    "SIDECAR_FLEET_SIZE": str(GATEWAYS),
                    "SIDECAR_AUTH_TOKEN": token,
                }
                for i in range(GATEWAYS)
            ]
            closed = f"http://127.0.0.1:{free_port()}"
            edges = [
                {
                    **base_env(folder, f"edge{i}", args.cap),
                    "SIDECAR_ENDPOINT_US": closed,
                    "SIDECAR_FORWARD_TO": ",".join(g["SIDECAR_LISTEN"] for g in gateways),
                    "SIDECAR_FORWARD_TOKEN": token,
                    "SIDECAR_FLUSH_INTERVAL": "200ms",
                }
                for i in range(PODS)
            ]
            envs = [*gateways, *edges]
            fronts = slice(GATEWAYS, GATEWAYS + PODS)
        async with processes(envs, folder) as addresses:
            tick = max(1.0, keys / 150)
            sent_at = await trickle(addresses[fronts], keys, tick, args.seconds)
            sent = len(sent_at) * keys * PODS
            with contextlib.suppress(TimeoutError):
                await collector.store.wait_until(lambda store: store.accepted_event_count >= sent, timeout=args.drain)
            ended_wall = time.time()
            requests = list(collector.store.requests)
    finally:
        await collector.stop()
        shutil.rmtree(folder, ignore_errors=True)
    offset = time.time() - time.monotonic()
    worst = 0.0
    delivered = 0
    for request in requests:
        if not request.events:
            continue
        delivered += len(request.events)
        oldest = min(parse_stamp(event["timestamp"]) for event in request.events)
        worst = max(worst, request.started_at + offset - oldest)
    undelivered_wait = 0.0
    arrived = {event["messageId"] for request in requests for event in request.events}
    missing_ticks = [
        t for t in range(len(sent_at)) for p in range(PODS) for k in range(keys) if f"t{t}-p{p}-k{k}" not in arrived
    ]
    if missing_ticks:
        undelivered_wait = ended_wall - sent_at[min(missing_ticks)]
    return Result(
        mode, keys, len(sent_at), sent, len(arrived), len(requests), worst, undelivered_wait,
        collector.store.max_requests_in_window(1.0),
    )  # fmt: skip


async def run(args: argparse.Namespace) -> None:
    """Start Redis, run every (keys, mode), print the table."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    folder = Path(tempfile.mkdtemp(prefix="bench-tiers-redis-"))
    results: list[Result] = []
    for keys in args.keys:
        for mode in ("one tier", "two tiers"):
            port = free_port()
            redis = subprocess.Popen(  # noqa: ASYNC220 - start-up, before anything is measured
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(folder)],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                await asyncio.sleep(0.3)
                result = await run_once(mode, keys, args, f"redis://127.0.0.1:{port}/0")
            finally:
                redis.kill()
                redis.wait()
            results.append(result)
            print(f"  done: {mode}, {keys} keys", file=sys.stderr, flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    print(f"P = {PODS} pods, {GATEWAYS} gateways, cap {args.cap:g}/s, trickle {args.seconds:g} s; {machine()}")
    rows = []
    for r in results:
        wait = f"{r.worst_wait:.1f} s" if r.delivered >= r.sent else f">= {max(r.worst_wait, r.undelivered_wait):.1f} s"
        rows.append(
            [
                r.mode,
                r.keys,
                r.ticks,
                f"{r.delivered}/{r.sent}",
                r.requests,
                f"{r.requests / max(1, r.keys * r.ticks):.2f}",
                f"{r.delivered / max(1, r.requests):.1f}",
                wait,
                r.busiest,
            ]
        )
    print(
        table(
            [
                "tiers",
                "keys",
                "ticks",
                "delivered",
                "requests",
                "req/key/tick",
                "events/req",
                "worst wait",
                "busiest 1 s",
            ],
            rows,
        )
    )
    for keys in args.keys:
        pace = 0.9 * args.cap
        print(
            f"arithmetic for K = {keys}: one tier, a round of every (key, pod) takes K x P / {pace:g} = "
            f"{keys * PODS / pace:.0f} s; two tiers, K / {pace:g} = {keys / pace:.0f} s"
        )


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[300, 3000], help="key counts (default 300 3000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="trickle duration (default 30)")
    parser.add_argument("--drain", type=float, default=90.0, help="longest wait for delivery after (default 90)")
    parser.add_argument("--cap", type=float, default=50.0, help="the partner cap (default 50)")
    parser.add_argument("--quick", action="store_true", help="300 keys only, 10 s of trickle")
    args = parser.parse_args()
    if args.quick:
        args.keys, args.seconds, args.drain = [300], 10.0, 30.0
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
