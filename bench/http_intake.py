"""The HTTP intake against the gRPC Batch path, side by side: ``.venv/bin/python bench/http_intake.py [--quick]``.

One sidecar process (disk spool, delivery to a closed port, so that ingest alone is measured) with both intakes on.
Each cell sends the same "Email Opened" track event (bench/common.py) N times from a client process of its own:

* ``HTTP, analytics-python, 100/upload``: segment-analytics-python, unmodified, ``host`` pointed at
  ``SIDECAR_HTTP_LISTEN`` (its defaults: 100 events per upload, one consumer thread; the queue raised to hold every
  event so that nothing is dropped);
* ``HTTP, analytics-python, 1000/upload``: the same with ``upload_size=1000``;
* ``HTTP, plain client, 100 / 1000 per request``: ``http.client`` posting ``/v1/batch`` bodies built with orjson, one
  in flight on one keep-alive connection: the intake's own cost, without the library's;
* ``gRPC Batch, 100 / 1000 per call``: one caller sending Batch calls one after the other (one in flight, as the
  library's one consumer thread has), events as ``properties_json``/``context_json``.

Reported per cell: events acknowledged per second, from the first call to the last answer (the library: to
``flush()`` returning), and the sidecar's CPU time per event (user + system from ``/proc/<pid>/stat``, before and after
the cell). Cells run one after the other in rotated order when ``--rounds`` > 1; the table shows each cell's median.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench.common import CONTEXT, PROPERTIES, WRITE_KEY, free_port, machine, sidecar, table, track_fields  # noqa: E402


def _library(url: str, events: int, upload_size: int, out: Any) -> None:
    """segment-analytics-python sending ``events`` track events to the HTTP intake; reports (seconds, dropped)."""
    import logging  # noqa: PLC0415

    from segment.analytics import Client  # noqa: PLC0415

    logging.getLogger("segment").setLevel(logging.CRITICAL)
    errors: list[Exception] = []
    client = Client(
        WRITE_KEY,
        host=url,
        upload_size=upload_size,
        max_queue_size=events + 1,
        on_error=lambda error, batch: errors.append(error),
    )
    dropped = 0
    started = time.monotonic()
    for index in range(events):
        ok, _ = client.track(
            user_id=f"user-{index % 100_000:06d}", event="Email Opened", properties=PROPERTIES, context=CONTEXT
        )
        dropped += not ok
    client.flush()
    seconds = time.monotonic() - started
    client.shutdown()
    out.put((seconds, dropped + len(errors)))


def _raw_http(port: int, events: int, size: int, out: Any) -> None:
    """POST /v1/batch bodies of ``size`` events (built with orjson), one in flight on one keep-alive connection:
    the intake's own cost, without the library's; reports (seconds, refused)."""
    import base64  # noqa: PLC0415
    import http.client  # noqa: PLC0415

    import orjson  # noqa: PLC0415

    headers = {
        "Content-Type": "application/json",
        "Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
    }
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    refused = 0
    started = time.monotonic()
    for first in range(0, events, size):
        batch = [
            {
                "type": "track",
                "userId": f"user-{index % 100_000:06d}",
                "event": "Email Opened",
                "properties": PROPERTIES,
                "context": CONTEXT,
            }
            for index in range(first, min(events, first + size))
        ]
        connection.request("POST", "/v1/batch", orjson.dumps({"batch": batch}), headers)
        reply = connection.getresponse()
        body = reply.read()
        if reply.status != 200:
            refused += len(batch) if reply.status != 400 else len(orjson.loads(body)["refused"])
    out.put((time.monotonic() - started, refused))


def _grpc(address: str, events: int, size: int, out: Any) -> None:
    """Batch calls of ``size`` events, one in flight, until ``events`` were acknowledged; reports (seconds, refused)."""
    import grpc  # noqa: PLC0415

    from sidecar._proto import sidecar_pb2 as pb  # noqa: PLC0415
    from sidecar._proto import sidecar_pb2_grpc as pb_grpc  # noqa: PLC0415

    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 17 * 2**20)]) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)  # type: ignore[no-untyped-call]
        grpc.channel_ready_future(channel).result(timeout=20)
        refused = 0
        started = time.monotonic()
        for first in range(0, events, size):
            request = pb.BatchRequest(
                events=[
                    pb.BatchEvent(track=pb.TrackRequest(**track_fields(i)))
                    for i in range(first, min(events, first + size))
                ]
            )
            refused += stub.Batch(request, timeout=60).rejected
        out.put((time.monotonic() - started, refused))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all threads)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run_cell(target: Any, args: tuple[Any, ...], pid: int) -> tuple[float, float, int]:
    """Run one client process; return (seconds, sidecar CPU seconds, events not acknowledged)."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    before = cpu_seconds(pid)
    process = context.Process(target=target, args=(*args, out))
    process.start()
    seconds, lost = out.get(timeout=1800)
    process.join()
    return seconds, cpu_seconds(pid) - before, lost


def main() -> None:
    """Run the cells against one sidecar; print one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 events per cell, one round")
    parser.add_argument("--events", type=int, default=100_000, help="events per cell (default 100,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, cells rotated each round (default 3)")
    options = parser.parse_args()
    events = 5_000 if options.quick else options.events
    rounds = 1 if options.quick else options.rounds
    http_port = free_port()
    url = f"http://127.0.0.1:{http_port}"
    print(f"# {machine()}; load average {psutil.getloadavg()[0]:.1f}; {events:,} events per cell, {rounds} round(s)")
    with sidecar({"SIDECAR_HTTP_LISTEN": f"127.0.0.1:{http_port}"}) as server:
        cells: list[tuple[str, Any, tuple[Any, ...]]] = [
            ("HTTP, analytics-python, 100/upload", _library, (url, events, 100)),
            ("HTTP, analytics-python, 1000/upload", _library, (url, events, 1000)),
            ("HTTP, plain client, 100 per request", _raw_http, (http_port, events, 100)),
            ("HTTP, plain client, 1000 per request", _raw_http, (http_port, events, 1000)),
            ("gRPC Batch, 100 per call", _grpc, (server.address, events, 100)),
            ("gRPC Batch, 1000 per call", _grpc, (server.address, events, 1000)),
        ]
        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name, _, _ in cells}
        for round_number in range(rounds):
            shift = round_number % len(cells)
            for name, target, args in cells[shift:] + cells[:shift]:
                results[name].append(run_cell(target, args, server.pid))
    rows = []
    for name, _, _ in cells:
        runs = results[name]
        rate = statistics.median(events / seconds for seconds, _, _ in runs)
        cpu = statistics.median(cpu / events * 1e6 for _, cpu, _ in runs)
        lost = max(lost for _, _, lost in runs)
        rows.append((name, f"{rate:,.0f}", f"{cpu:.1f}", lost))
    print(table(["cell", "events/s acknowledged", "sidecar CPU us/event", "not acknowledged"], rows))
    print(f"# load average after: {psutil.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
