"""Benchmarks 2 and 4, end to end and memory: ``uv run python bench/end_to_end.py [--quick] [--keys 1,100,10000]``.

Benchmark 2: 1,000,000 events from N write keys (N = 1, 100, 10,000) sent through ``Batch`` (1,000 events per
call, two client processes with two calls in flight each) to a sidecar (disk spool, default settings) whose US
endpoint is the local collector (``sidecar.collector.Collector``, ``keep_events=False``), each in a process of its
own. Reported per N: delivered events/s = events / (last arrival at the collector - first call), the same against
the cap's ceiling for this event size (50 x events per full 475,000-byte batch), the largest number of requests the
collector saw start in any one-second window (never above 50), mean batch fill (body bytes / 500,000), p99 time from
a call's acknowledgement to its events' arrival, and for N = 10,000 (one busy key with half the events, 9,999 quiet
keys sharing the other half) the worst acknowledgement-to-arrival wait of a quiet key's event. The sidecar's RSS
(psutil) is sampled throughout.

Benchmark 4 (on unless ``--no-backlog``): the same 1,000,000 events (N = 1, then N = 100) sent while the collector
is down, so they pile up in the spool; the sidecar's RSS is sampled during the backlog (it must stay flat, under
250 MB: the backlog lives on disk). Then the collector comes up on the same port and the backlog drains: delivered
events/s and mean batch fill *while a backlog exists* are reported for it (``SIDECAR_RETRY_MAX_DELAY=1s`` so the
outage's backoff does not hide the drain).

``--quick`` is a smoke run of a few seconds (20,000 events, N = 1 and 100, small backlogs), for CI.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from array import array
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    CollectorProcess,
    RssSampler,
    ceiling,
    enriched_size,
    free_port,
    machine,
    percentile,
    sidecar,
    table,
    track_fields,
)
from sidecar.collector import max_requests_in_window  # noqa: E402
from sidecar.config import SEGMENT_MAX_BATCH_BYTES  # noqa: E402

CALL_EVENTS = 1000
PROCESSES = 2
IN_FLIGHT = 2  # calls in flight per client process
BUSY = "wk-busy-key-0"


def key_of(index: int, keys: int) -> tuple[str, bool]:
    """(write key, quiet?) of event ``index`` among ``keys`` keys; with 10,000 keys, one busy key takes half."""
    if keys >= 1000:
        if index % 2 == 0:
            return BUSY, False
        return f"wk-quiet-{(index // 2) % (keys - 1):05d}", True
    return f"wk-key-{index % keys:05d}", False


def message_id(process: int, call: int, index: int, quiet: bool) -> str:
    """A 36-character id (a UUID's length, so events keep their size) naming the call that sent it."""
    return f"{'q' if quiet else 'b'}{process:02d}-{call:09d}-{index:05d}-".ljust(36, "0")


def _client(address: str, process: int, first: int, count: int, keys: int, out: Any) -> None:
    """Send events first..first+count-1 in Batch calls; report (first call start, ack time per call)."""
    import asyncio  # noqa: PLC0415

    import grpc  # noqa: PLC0415
    import uvloop  # noqa: PLC0415

    from sidecar._proto import sidecar_pb2 as pb  # noqa: PLC0415
    from sidecar._proto import sidecar_pb2_grpc as pb_grpc  # noqa: PLC0415

    calls = (count + CALL_EVENTS - 1) // CALL_EVENTS
    requests = []
    for call in range(calls):
        events = []
        for offset in range(call * CALL_EVENTS, min(count, (call + 1) * CALL_EVENTS)):
            write_key, quiet = key_of(first + offset, keys)
            request = pb.TrackRequest(
                **track_fields(first + offset, write_key, message_id(process, call, offset % CALL_EVENTS, quiet))
            )
            events.append(pb.BatchEvent(track=request))
        requests.append(pb.BatchRequest(events=events))

    async def run() -> tuple[float, bytes]:
        acks = array("d", [0.0] * calls)
        options = [("grpc.max_send_message_length", 17 * 2**20)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            await channel.channel_ready()
            stub = pb_grpc.SidecarServiceStub(channel)  # type: ignore[no-untyped-call]
            queue = list(range(calls))
            queue.reverse()
            out.put(("ready", process))
            started = time.monotonic()

            async def caller() -> None:
                while queue:
                    call = queue.pop()
                    while True:
                        try:
                            response = await stub.Batch(requests[call], timeout=60)
                        except grpc.aio.AioRpcError as error:
                            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                                await asyncio.sleep(0.5)  # spool full: retry the same ids, as a client should
                                continue
                            raise
                        break
                    if response.rejected:
                        raise RuntimeError(f"{response.rejected} events rejected")
                    acks[call] = time.monotonic()

            await asyncio.gather(*(caller() for _ in range(IN_FLIGHT)))
            return started, acks.tobytes()

    out.put(("done", process, *uvloop.run(run())))


def send(address: str, events: int, keys: int) -> tuple[float, float, dict[tuple[int, int], float]]:
    """Send ``events`` from the client processes; return (first call, last ack, ack time per (process, call))."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    share = events // PROCESSES
    workers = [
        context.Process(target=_client, args=(address, p, p * share, share, keys, out)) for p in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    finished: list[Any] = []
    while len(finished) < PROCESSES:
        message = out.get(timeout=1800)
        if message[0] == "done":
            finished.append(message)
    for worker in workers:
        worker.join()
    acks: dict[tuple[int, int], float] = {}
    for _, process, _started, raw in finished:
        values = array("d")
        values.frombytes(raw)
        for call, at in enumerate(values):
            acks[(process, call)] = at
    first_call = min(message[2] for message in finished)
    return first_call, max(acks.values()), acks


def analyse(
    arrivals: list[tuple[float, float, int, int, list[str]]],
    acks: dict[tuple[int, int], float] | None,
    first_call: float,
    events: int,
) -> dict[str, Any]:
    """Figures from the collector's requests (and the clients' acknowledgement times, when given)."""
    accepted = [a for a in arrivals if 200 <= a[2] < 300]
    delivered_ids = {mid for a in accepted for mid in a[4]}
    last_arrival = max(a[0] for a in accepted)
    waits: list[float] = []
    quiet_worst = 0.0
    if acks is not None:
        for arrival, _, _, _, ids in accepted:
            for mid in ids:
                wait = arrival - acks[(int(mid[1:3]), int(mid[4:13]))]
                waits.append(wait)
                if mid[0] == "q" and wait > quiet_worst:
                    quiet_worst = wait
        waits.sort()
    return {
        "delivered": len(delivered_ids),
        # Not yet arrived when the wait ended (600 s live, 900 s for a drain): still spooled, not lost.
        "missing": events - len(delivered_ids),
        "events_s": len(delivered_ids) / (last_arrival - first_call),
        "seconds": last_arrival - first_call,
        "requests": len(arrivals),
        "max_rps": max_requests_in_window([a[1] for a in arrivals], 1.0),
        "fill": sum(a[3] for a in accepted) / len(accepted) / SEGMENT_MAX_BATCH_BYTES,
        "p99_wait": percentile(waits, 0.99) if waits else None,
        "quiet_worst": quiet_worst if acks is not None else None,
        "statuses": sorted({a[2] for a in arrivals}),
    }


def run_keys(events: int, keys: int) -> dict[str, Any]:
    """Benchmark 2 for one N."""
    collector = CollectorProcess()
    collector.start()
    with sidecar({"SIDECAR_ENDPOINT_US": collector.url}, grace=5.0) as server, RssSampler(server.pid) as rss:
        first_call, last_ack, acks = send(server.address, events, keys)
        ingest_s = events / (last_ack - first_call)
        count = collector.wait_for(events, timeout=600)
        arrivals = collector.dump_and_stop()
    figures = analyse(arrivals, acks, first_call, events)
    figures.update(keys=keys, ingest_s=ingest_s, rss_peak=rss.peak_mb(), arrived=count)
    return figures


def run_backlog(events: int, keys: int) -> dict[str, Any]:
    """Benchmark 4: RSS while ``events`` from ``keys`` write keys wait out an outage, then the drain of that backlog."""
    port = free_port()
    env = {"SIDECAR_ENDPOINT_US": f"http://127.0.0.1:{port}", "SIDECAR_RETRY_MAX_DELAY": "1s"}
    with sidecar(env, grace=5.0) as server, RssSampler(server.pid) as rss:
        start = time.monotonic()
        first_call, last_ack, _ = send(server.address, events, keys)
        backlog_done = time.monotonic()
        rss_during = rss.peak_mb(start)
        rss_start = min((s[1] for s in rss.samples if s[0] >= start), default=0) / 1e6
        # RSS at each quarter of the backlog's build-up: flat means the last quarters add nothing.
        during = [s for s in rss.samples if start <= s[0] <= backlog_done]
        quarters = [during[min(len(during) - 1, len(during) * q // 4)][1] / 1e6 for q in (1, 2, 3, 4)] if during else []
        collector = CollectorProcess(port)
        collector.start()
        drain_start = time.monotonic()
        count = collector.wait_for(events, timeout=900)
        arrivals = collector.dump_and_stop()
    figures = analyse(arrivals, None, drain_start, events)
    figures.update(
        ingest_s=events / (last_ack - first_call),
        rss_start=rss_start,
        rss_backlog_peak=rss_during,
        rss_quarters=quarters,
        rss_drain_peak=rss.peak_mb(backlog_done),
        arrived=count,
    )
    return figures


def main() -> None:
    """Run benchmark 2 for each N, then benchmark 4; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 events, N = 1 and 100")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", default="1,100,10000", help="comma-separated values of N")
    parser.add_argument("--no-backlog", action="store_true", help="skip benchmark 4")
    parser.add_argument("--backlog-keys", default="1,100", help="comma-separated values of N for benchmark 4")
    args = parser.parse_args()
    events = 20_000 if args.quick else args.events
    keys = [1, 100] if args.quick else [int(k) for k in args.keys.split(",") if k]
    size = enriched_size()
    per_batch, top = ceiling(size)
    print(f"machine: {machine()}")
    print(f"event: {size} bytes enriched; ceiling {per_batch} events per full batch x 50 requests/s = {top:,.0f}/s")
    rows = []
    for n in keys:
        figures = run_keys(events, n)
        print(f"  N={n}: {figures}", flush=True)
        rows.append(
            [
                n,
                f"{events:,}",
                f"{figures['ingest_s']:,.0f}",
                f"{figures['events_s']:,.0f}",
                f"{figures['events_s'] / top:.0%}",
                figures["max_rps"],
                f"{figures['fill']:.0%}",
                f"{figures['p99_wait']:.2f}",
                f"{figures['quiet_worst']:.2f}" if n >= 1000 else "",
                figures["missing"],
                f"{figures['rss_peak']:.0f}",
            ]
        )
    print()
    print(
        table(
            [
                "N keys",
                "events",
                "acked/s",
                "delivered/s",
                "% ceiling",
                "max req/s",
                "mean fill",
                "p99 ack->arrival s",
                "worst quiet wait s",
                "not arrived by the deadline",
                "RSS peak MB",
            ],
            rows,
        )
    )
    if args.no_backlog:
        return
    backlog_events = 20_000 if args.quick else args.events
    rows = []
    for n in [int(k) for k in args.backlog_keys.split(",") if k]:
        figures = run_backlog(backlog_events, n)
        print(f"  backlog N={n}: {figures}", flush=True)
        rows.append(
            [
                n,
                f"{backlog_events:,}",
                f"{figures['ingest_s']:,.0f}",
                f"{figures['rss_start']:.0f}",
                ", ".join(f"{mb:.0f}" for mb in figures["rss_quarters"]),
                f"{figures['rss_backlog_peak']:.0f}",
                f"{figures['rss_drain_peak']:.0f}",
                f"{figures['events_s']:,.0f}",
                f"{figures['events_s'] / top:.0%}",
                figures["max_rps"],
                f"{figures['fill']:.0%}",
                figures["missing"],
            ]
        )
    print()
    print(
        table(
            [
                "N keys",
                "backlog events",
                "acked/s",
                "RSS at start MB",
                "RSS at 1/4, 1/2, 3/4, end of backlog MB",
                "RSS peak during backlog MB",
                "RSS peak during drain MB",
                "drain delivered/s",
                "% ceiling",
                "max req/s",
                "mean fill",
                "not arrived by the deadline",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
