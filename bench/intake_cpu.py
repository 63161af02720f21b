"""The intakes' CPU per event in one process, stage by stage, without gRPC, HTTP, the spool or delivery.

``.venv/bin/python bench/intake_cpu.py [--base DIR] [--rounds R] [--quick]`` decodes a ``BatchRequest`` of 1,000
"Email Opened" events as the Python client's Batcher encodes them (the events of ``cpu_per_event.py``), then runs
what the ``Batch`` handler runs on them: decoding each event into a call, the validators (partner rules and the Spec
check, strict) with the enricher, and building and encoding the response. Each stage is timed on its own (thread
CPU), and so is the whole path as the handler runs it, one event after the other. The HTTP intake's stages take the
same events as segment-analytics-python sends them to ``/v1/batch`` (its context, timestamp and message id on each):
reading the body (parse, write key, depth and repeated-key checks), the events to calls, and its whole path with the
validators and the enricher.

The whole-process figure of ``cpu_per_event.py`` moves by 15% or more between runs on a shared machine, more than a
trim of the intake changes it; this one isolates the intake. ``--base DIR`` runs a checkout of an earlier commit
too, in alternation (each tree in a process of its own, round after round), and prints both with their ratio, and
the median of each round's own ratio (the two trees of a round run seconds apart, so the machine's drift moves it
least).
Figures are the median over rounds of each round's fastest of 15 repetitions, in microseconds per event: on a
shared machine the fastest repetition is the one least slowed by neighbours, so it moves least from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 1_000
STAGES = (
    "request decode",
    "events to calls",
    "validators + enricher",
    "response",
    "whole path",
    "HTTP: body read",
    "HTTP: events to calls",
    "HTTP: whole path",
)


def _child(tree: Path, repetitions: int) -> dict[str, float]:
    """In a process whose ``sidecar`` is ``tree``'s: each stage's median CPU per event (us)."""
    sys.path[:0] = [str(tree), str(tree / "clients" / "python" / "src")]
    from segment_sidecar_client import Track  # noqa: PLC0415
    from segment_sidecar_client._wire import Encoder  # noqa: PLC0415

    from bench.cpu_per_event import EVENT_NAME, PROPERTIES, WRITE_KEY, user_id  # noqa: PLC0415
    from sidecar._proto import sidecar_pb2 as pb  # noqa: PLC0415
    from sidecar.api import convert  # noqa: PLC0415
    from sidecar.enrich.enricher import Enricher  # noqa: PLC0415
    from sidecar.errors import InvalidEvent  # noqa: PLC0415
    from sidecar.intake import Intake  # noqa: PLC0415
    from sidecar.model import Region  # noqa: PLC0415
    from sidecar.validate.rules import default_validators  # noqa: PLC0415
    from sidecar.validate.spec_rule import SpecRule  # noqa: PLC0415

    encoder = Encoder()
    body = b"".join(
        encoder.encode(Track(user_id=user_id(n), event=EVENT_NAME, properties=PROPERTIES), WRITE_KEY, None)[1]
        for n in range(EVENTS)
    )
    prepare = Intake(default_validators([SpecRule("strict", ())]), Enricher("bench", "1.0.0"), None, None).prepare  # type: ignore[arg-type]
    batch_calls = getattr(convert, "batch_calls", None)

    def calls_of(request: Any) -> list[Any]:
        if batch_calls is not None:
            return [call for _, _, call in batch_calls(request.events, Region.US, 1.5)]
        # A tree from before batch_calls: the handler decoded each event on its own.
        return [
            convert.to_call(convert.BATCH_KINDS[kind], getattr(item, kind), Region.US, 1.5)
            for item in request.events
            if (kind := item.WhichOneof("event"))
        ]

    def prepared(calls: list[Any]) -> list[Any]:
        return [prepare(call)[0] for call in calls]

    def response_of(events: list[Any]) -> bytes:
        response = pb.BatchResponse()
        add = response.results.add
        for event in events:
            add(message_id=event.message_id)
        return bytes(response.SerializeToString())

    def whole() -> bytes:
        request = pb.BatchRequest.FromString(body)
        response = pb.BatchResponse()
        add = response.results.add
        for call in calls_of(request):
            if isinstance(call, InvalidEvent):
                raise call
            add(message_id=prepare(call)[0].message_id)
        return bytes(response.SerializeToString())

    request = pb.BatchRequest.FromString(body)
    calls = calls_of(request)
    events = prepared(calls)
    stages: dict[str, Callable[[], object]] = {
        "request decode": lambda: pb.BatchRequest.FromString(body),
        "events to calls": lambda: calls_of(request),
        "validators + enricher": lambda: prepared(calls),
        "response": lambda: response_of(events),
        "whole path": whole,
    }
    stages |= _http_stages(prepare)
    figures = {}
    for name, stage in stages.items():
        spent = []
        for _ in range(repetitions):
            started = time.thread_time()
            stage()
            spent.append(time.thread_time() - started)
        figures[name] = min(spent) / EVENTS * 1e6
    return figures


def _http_stages(prepare: Callable[[Any], Any]) -> dict[str, Callable[[], object]]:
    """The HTTP intake's stages on a ``/v1/batch`` body of the same events, as analytics-python writes them."""
    import orjson  # noqa: PLC0415

    from bench.cpu_per_event import EVENT_NAME, PROPERTIES, user_id  # noqa: PLC0415
    from sidecar.http_intake import parse  # noqa: PLC0415
    from sidecar.model import Region  # noqa: PLC0415

    library = {"library": {"name": "analytics-python", "version": "2.3.4"}}
    batch = [
        {
            "userId": user_id(n),
            "event": EVENT_NAME,
            "properties": PROPERTIES,
            "context": library,
            "integrations": {},
            "messageId": f"6d0ad1b4-52a4-4c6b-a4b2-{n:012d}",
            "timestamp": "2026-12-06T17:40:00.123456+00:00",
            "type": "track",
        }
        for n in range(EVENTS)
    ]
    body = orjson.dumps({"batch": batch, "sentAt": "2026-12-06T17:40:01.000000+00:00"})

    def read() -> tuple[list[Any], Any]:
        parsed = parse.parse_body(body)
        shared = parse.envelope(body, parsed, "bench-write-key", Region.US)
        parse.repeated_keys(body, parsed, batch=True)
        return parse.batch_items(parsed), shared

    items, shared = read()

    def calls() -> list[Any]:
        return [parse.to_call(item, None, shared, 1.5) for item in items]

    def whole() -> list[Any]:
        items, shared = read()
        return [prepare(parse.to_call(item, None, shared, 1.5))[0] for item in items]

    return {"HTTP: body read": read, "HTTP: events to calls": calls, "HTTP: whole path": whole}


def run_tree(tree: Path, repetitions: int) -> dict[str, float]:
    """One round of ``tree`` in a process of its own."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(tree), "--repetitions", str(repetitions)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        cwd=ROOT,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    """Parse arguments, alternate the trees, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, help="a checkout of an earlier commit, run in alternation with this tree")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a smoke run: one round of 3 repetitions")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repetitions", type=int, default=15, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(_child(args.child, args.repetitions)))
        return
    rounds, repetitions = (1, 3) if args.quick else (args.rounds, args.repetitions)
    trees = {"this tree": ROOT} | ({"base": args.base.resolve()} if args.base else {})
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    loads = []
    for round_number in range(rounds):
        order = list(trees.items())
        if round_number % 2:
            order.reverse()
        for name, tree in order:
            loads.append(os.getloadavg()[0])
            results[name].append(run_tree(tree, repetitions))
    from bench.common import machine, table  # noqa: PLC0415

    print(machine())
    load = f"load average {min(loads):.1f}-{max(loads):.1f}"
    print(f"{EVENTS:,} events per BatchRequest; {rounds} round(s) of {repetitions} repetitions; {load}")
    medians = {
        name: {stage: statistics.median(r[stage] for r in runs) for stage in STAGES} for name, runs in results.items()
    }
    headers = ["stage (us per event)", *trees]
    if args.base:
        headers += ["this tree / base", "per round: median (range)"]
    rows = []
    for stage in STAGES:
        row: list[object] = [stage, *(f"{medians[name][stage]:.2f}" for name in trees)]
        if args.base:
            # The two trees of one round ran seconds apart: their ratio is what the machine's drift moves least.
            ratios = sorted(
                mine[stage] / base[stage] for mine, base in zip(results["this tree"], results["base"], strict=True)
            )
            row.append(f"{medians['this tree'][stage] / medians['base'][stage]:.2f}")
            row.append(f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})")
        rows.append(row)
    print(table(headers, rows))


if __name__ == "__main__":
    main()
