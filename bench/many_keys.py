"""Many write keys (issue 12): ``uv run python bench/many_keys.py [--quick]``.

For each scenario, a backlog is spooled while Segment is unreachable (the endpoint is a closed port), the sidecar is
stopped with SIGTERM, and a new sidecar is started on the same spool with the local collector (its own process) as
its endpoint; the drain is then measured at the collector:

* 1 key x 300,000 events: delivered events/s (first to last arrival) as % of the byte ceiling
  (50 x events per full 475,000-byte batch);
* 2,000 keys x 150 and 10,000 keys x 100 events, interleaved in the spool: requests used against the minimum (sum over
  keys of ceil(body bytes / 475,000)), delivered events/s as % of the request-bound ceiling (events / (minimum / 50)),
  the worst wait of any key's oldest event (from the drain's first arrival to the arrival of that key's first event;
  target 1.2 x keys / 45 + the flush interval), and the wait of one event of a new key sent 3 s into the drain
  (acknowledgement to arrival);

and for every scenario the sidecar's peak RSS during the drain (psutil) and the most requests the collector saw start
in any one-second window (never above 50). ``--quick`` runs small scenarios (1 x 30,000; 200 x 150; 1,000 x 100) in
about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from bench.common import (  # noqa: E402
    INTEGRATION_NAME,
    CollectorProcess,
    RssSampler,
    ceiling,
    enriched_size,
    free_port,
    machine,
    table,
    track_fields,
    wait_for_grpc,
)
from sidecar._proto import sidecar_pb2 as pb  # noqa: E402
from sidecar._proto import sidecar_pb2_grpc as pb_grpc  # noqa: E402
from sidecar.collector import max_requests_in_window  # noqa: E402
from sidecar.config import SEGMENT_MAX_BATCH_BYTES  # noqa: E402
from sidecar.send.http import envelope_overhead  # noqa: E402

CALL_EVENTS = 1000
IN_FLIGHT = 4
FLUSH_INTERVAL = 1.0
NEW_KEY_AFTER = 3.0
NEW_KEY = "wk-new-during-drain"


def key_name(index: int) -> str:
    """Write key number ``index``."""
    return f"wk-many-{index:05d}"


def start_sidecar(spool_dir: Path, endpoint: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A sidecar process (bench/serve.py, defaults otherwise) on ``spool_dir``, delivering to ``endpoint``."""
    port = free_port()
    env = {
        **os.environ,
        "SIDECAR_LISTEN": f"127.0.0.1:{port}",
        "SIDECAR_INTEGRATION_NAME": INTEGRATION_NAME,
        "SIDECAR_SPOOL_DIR": str(spool_dir),
        "SIDECAR_ENDPOINT_US": endpoint,
        "SIDECAR_ENDPOINT_EU": endpoint,
        "SIDECAR_LOG_FORMAT": "json",
        "SIDECAR_LOG_LEVEL": "warning",
        "SIDECAR_SHUTDOWN_GRACE": "1s",
        "SIDECAR_METRICS_LISTEN": "off",  # on by default at 127.0.0.1:9464, which another process may hold
        "SIDECAR_SPOOL_MAX_BYTES": str(4 * 2**30),
    }
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "serve.py")], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    address = f"127.0.0.1:{port}"
    wait_for_grpc(address, timeout=120)
    return process, address


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait."""
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def spool_backlog(address: str, keys: int, per_key: int) -> None:
    """Send ``keys x per_key`` events, interleaved (event i belongs to key i % keys), ``IN_FLIGHT`` calls at a time."""
    total = keys * per_key
    calls = asyncio.Queue[int]()
    for first in range(0, total, CALL_EVENTS):
        calls.put_nowait(first)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)  # type: ignore[no-untyped-call]

        async def caller() -> None:
            while not calls.empty():
                first = calls.get_nowait()
                events = [
                    pb.BatchEvent(
                        track=pb.TrackRequest(**track_fields(i, key_name(i % keys), f"{i % keys:05d}-{i:07d}"))
                    )
                    for i in range(first, min(total, first + CALL_EVENTS))
                ]
                reply = await stub.Batch(pb.BatchRequest(events=events), timeout=120)
                if reply.rejected:
                    raise RuntimeError(f"{reply.rejected} events refused while spooling the backlog")

        await asyncio.gather(*(caller() for _ in range(IN_FLIGHT)))


async def send_new_key(address: str) -> float:
    """One event of a new key; the monotonic time of its acknowledgement."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)  # type: ignore[no-untyped-call]
        await stub.Track(pb.TrackRequest(**track_fields(0, NEW_KEY, "new-key-event")), timeout=30)
    return time.monotonic()


def minimum_requests(keys: int, per_key: int, size: int) -> int:
    """Sum over keys of ceil(body bytes / 475,000) (and of ceil(events / 2,500), whichever is more)."""
    body = envelope_overhead(key_name(0)) + per_key * (size + 1)
    return keys * max(math.ceil(body / SEGMENT_MAX_BATCH_BYTES), math.ceil(per_key / 2500))


def scenario(keys: int, per_key: int, timeout: float) -> dict[str, Any]:
    """Spool the backlog with Segment unreachable, restart on it with the collector, measure the drain."""
    size = enriched_size()
    total = keys * per_key
    with tempfile.TemporaryDirectory(prefix="many-keys-") as folder:
        spool_dir = Path(folder) / "spool"
        log_path = Path(folder) / "sidecar.log"
        process, address = start_sidecar(spool_dir, f"http://127.0.0.1:{free_port()}", log_path)
        started = time.monotonic()
        asyncio.run(spool_backlog(address, keys, per_key))
        spooled_s = time.monotonic() - started
        stop(process)
        collector = CollectorProcess()
        collector.start()
        restart = time.monotonic()
        process, address = start_sidecar(spool_dir, collector.url, log_path)
        ready = time.monotonic()
        new_ack = None
        try:
            with RssSampler(process.pid) as rss:
                if keys > 1:
                    time.sleep(max(0.0, ready + NEW_KEY_AFTER - time.monotonic()))
                    new_ack = asyncio.run(send_new_key(address))
                collector.wait_for(total + (1 if keys > 1 else 0), timeout=timeout)
        finally:
            stop(process)
        arrivals = collector.dump_and_stop()
    accepted = [a for a in arrivals if 200 <= a[2] < 300]
    first_arrival: dict[str, float] = {}
    delivered: set[str] = set()
    new_arrival = None
    for arrival, _, _, _, ids in accepted:
        for mid in ids:
            if mid == "new-key-event":
                new_arrival = arrival
                continue
            delivered.add(mid)
            key = mid[:5]
            if key not in first_arrival:
                first_arrival[key] = arrival
    times = [a[0] for a in accepted]
    span = max(times) - min(times) if times else 0.0
    per_batch, byte_ceiling = ceiling(size)
    minimum = minimum_requests(keys, per_key, size)
    backlog_requests = sum(1 for a in arrivals if "new-key-event" not in a[4])
    return {
        "keys": keys,
        "per_key": per_key,
        "events": total,
        "spooled_s": spooled_s,
        "restart_to_ready": ready - restart,
        "delivered": len(delivered),
        "missing": total - len(delivered),
        "span": span,
        "events_s": len(delivered) / span if span else 0.0,
        "byte_ceiling": byte_ceiling,
        "requests": backlog_requests,
        "minimum": minimum,
        "request_ceiling": total / (minimum / 50),
        # From the drain's first arrival (delivery starts during start-up, before the gRPC port answers).
        "worst_oldest_wait": max((at - min(times) for at in first_arrival.values()), default=0.0),
        "target_wait": 1.2 * keys / 45 + FLUSH_INTERVAL,
        "new_key_wait": (new_arrival - new_ack) if new_arrival is not None and new_ack is not None else None,
        "max_rps": max_requests_in_window([a[1] for a in arrivals], 1.0) if arrivals else 0,
        "rss_peak": rss.peak_mb(),
        "statuses": sorted({a[2] for a in arrivals}),
        "per_batch": per_batch,
    }


def main() -> None:
    """Run the scenarios and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small scenarios (about a minute)")
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="KEYSxEVENTS",
        help="run only this backlog, e.g. 1x300000 (repeatable; for repeated runs of one figure)",
    )
    args = parser.parse_args()
    scenarios = [(1, 30_000), (200, 150), (1_000, 100)] if args.quick else [(1, 300_000), (2_000, 150), (10_000, 100)]
    if args.scenario:
        scenarios = [(int(k), int(n)) for k, n in (text.lower().split("x") for text in args.scenario)]
    size = enriched_size()
    per_batch, top = ceiling(size)
    print(f"machine: {machine()}")
    print(f"event: {size} bytes enriched; {per_batch} events per full batch; byte ceiling {top:,.0f} events/s")
    rows = []
    for keys, per_key in scenarios:
        figures = scenario(keys, per_key, timeout=900)
        print(f"  {keys} x {per_key}: {figures}", flush=True)
        single = keys == 1
        rows.append(
            [
                f"{keys:,} x {per_key:,}",
                f"{figures['requests']:,}",
                f"{figures['minimum']:,}",
                f"{figures['requests'] / figures['minimum']:.2f}",
                f"{figures['events_s']:,.0f}",
                f"{figures['events_s'] / top:.0%}" if single else "",
                "" if single else f"{figures['events_s'] / figures['request_ceiling']:.0%}",
                "" if single else f"{figures['worst_oldest_wait']:.1f} (<= {figures['target_wait']:.1f})",
                "" if figures["new_key_wait"] is None else f"{figures['new_key_wait']:.2f}",
                figures["max_rps"],
                f"{figures['rss_peak']:.0f}",
                figures["missing"],
            ]
        )
    print()
    print(
        table(
            [
                "keys x events",
                "requests",
                "minimum",
                "ratio",
                "delivered/s",
                "% byte ceiling",
                "% request ceiling",
                "worst oldest wait s (target)",
                "new key wait s",
                "max req/s",
                "RSS peak MB",
                "not arrived",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
