"""Benchmark 3, side by side: ``uv run python bench/versus_analytics_python.py [--quick] [--events N]``.

The library a Python partner would embed instead of the sidecar, ``segment-analytics-python`` (import name
``segment.analytics``), sends the same events (one write key, the same properties and context) to the same local
collector (``sidecar.collector.Collector`` in its own process, through the client's ``host`` option), from a partner
process that calls ``Client.track`` as fast as it can, then ``flush()``:

* ``defaults``: the library's defaults (100 events per upload, a queue of 10,000, one consumer thread); it drops
  events when its queue is full (``track`` returns False): they are counted;
* ``raised``: batch size raised to 2,500 (its 475,000-byte limit then decides) and the queue to hold every event,
  so that it drops nothing.

In the same run, the sidecar sends the same number of events from one write key (bench/end_to_end.py, N = 1).
Reported: delivered events/s = delivered / (last arrival - first call), the most requests started in any one-second
window (the library does not limit its rate; the partner cap is 50/s), dropped events, and the sidecar's figure
divided by each. ``--quick`` is a smoke run of a few seconds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import CONTEXT, PROPERTIES, WRITE_KEY, CollectorProcess, machine, table  # noqa: E402
from bench.end_to_end import analyse, run_keys  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "raised": {"upload_size": 2500, "max_queue_size": 2_000_000},
}


def _partner(url: str, events: int, options: dict[str, Any], out: Any) -> None:
    """A partner process embedding the library: track ``events`` events, flush, report (first call, drops)."""
    import logging  # noqa: PLC0415

    from segment.analytics import Client  # noqa: PLC0415

    logging.getLogger("segment").setLevel(logging.CRITICAL)  # a full queue logs one line per dropped event
    client = Client(WRITE_KEY, host=url, **options)
    dropped = 0
    started = time.monotonic()
    for index in range(events):
        ok, _ = client.track(
            user_id=f"user-{index % 100_000:06d}",
            event="Email Opened",
            properties=PROPERTIES,
            context=CONTEXT,
            message_id=f"a{index:011d}-".ljust(36, "0"),
        )
        if not ok:
            dropped += 1
    enqueued_at = time.monotonic()
    client.flush()
    client.shutdown()
    out.put((started, enqueued_at, dropped))


def run_library(events: int, options: dict[str, Any]) -> dict[str, Any]:
    """One configuration of the library against a fresh collector."""
    collector = CollectorProcess()
    collector.start()
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    process = context.Process(target=_partner, args=(collector.url, events, options, out))
    process.start()
    started, enqueued_at, dropped = out.get(timeout=3600)
    process.join()
    arrivals = collector.dump_and_stop()
    figures = analyse(arrivals, None, started, events)
    figures.update(dropped=dropped, enqueue_s=events / (enqueued_at - started))
    return figures


def main() -> None:
    """Run the sidecar, then the library's two configurations; print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 events")
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    events = 20_000 if args.quick else args.events
    print(f"machine: {machine()}")
    results: dict[str, dict[str, Any]] = {"sidecar": run_keys(events, 1)}
    print(f"  sidecar: {results['sidecar']}", flush=True)
    for name, options in CONFIGS.items():
        results[f"analytics-python {name}"] = run_library(events, options)
        print(f"  {name}: {results[f'analytics-python {name}']}", flush=True)
    sidecar_rate = results["sidecar"]["events_s"]
    rows = [
        [
            name,
            f"{events:,}",
            f"{figures['delivered']:,}",
            f"{figures.get('dropped', figures['missing']):,}",
            f"{figures['events_s']:,.0f}",
            figures["max_rps"],
            figures["requests"],
            f"{figures['fill']:.0%}",
            "1.0" if name == "sidecar" else f"{sidecar_rate / figures['events_s']:.1f}",
        ]
        for name, figures in results.items()
    ]
    print()
    print(
        table(
            [
                "sender",
                "events",
                "delivered",
                "dropped",
                "delivered/s",
                "max req/s",
                "requests",
                "mean fill",
                "sidecar / this",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
