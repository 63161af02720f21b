"""Cost of the Spec checker per event: ``uv run python bench/bench_spec.py [--quick]``.

Prints ns/event (best of several interleaved rounds, in thread CPU time so that a busy machine inflates it less) for
exact, near-miss and custom names, cold (name cache disabled, every call classifies from scratch) and memoised (the
hot-path steady state), then for property and trait checks, then the corpus figures. The first row is a baseline (a
lambda doing one dict lookup) to read the others against on a busy machine. The hot path budget at 50,000 events/s is
20,000 ns per event for *everything*; the checker should use a small fraction of it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "unit" / "validate" / "spec"))

from spec_corpus import custom_names, near_misses, real_score, score  # noqa: E402

from sidecar.model import CallType  # noqa: E402
from sidecar.validate.spec import SpecChecker  # noqa: E402

ORDER = {
    "order_id": "50314b8e9bcf000000000000",
    "affiliation": "Google Store",
    "total": 27.5,
    "revenue": 25.0,
    "shipping": 3,
    "tax": 2,
    "discount": 2.5,
    "coupon": "hasbros",
    "currency": "USD",
    "products": [
        {"product_id": "507f1f77bcf86cd799439011", "sku": "45790-32", "name": "Monopoly", "price": 19, "quantity": 1},
        {"product_id": "505bd76785ebb509fc183733", "sku": "46493-32", "name": "Uno", "price": 3, "quantity": 2},
    ],
}
INTEGRATIONS = {"All": False, "Mixpanel": True}
CUSTOM_PROPS = {f"prop_{i}": i for i in range(10)}
TRAITS = {
    "email": "ada@example.com",
    "firstName": "Ada",
    "lastName": "Lovelace",
    "createdAt": "2024-05-01T12:00:00Z",
    "plan": "pro",
    "logins": 5,
    "company": {"name": "Analytical", "id": "c1"},
    "phone": "+44 20 0000 0000",
}


def per_event_ns(call: Callable[[], Any], calls: int, rounds: int) -> float:
    """Best-of-``rounds`` mean cost of ``call`` in nanoseconds."""
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time_ns()
        for _ in range(calls):
            call()
        best = min(best, (time.thread_time_ns() - start) / calls)
    return best


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (CI smoke run)")
    args = parser.parse_args()
    calls, rounds = (2_000, 3) if args.quick else (50_000, 5)

    start = time.perf_counter()
    warm = SpecChecker()
    build_ms = (time.perf_counter() - start) * 1000
    cold = SpecChecker(name_cache_size=0)
    off = SpecChecker(mode="off")
    track = CallType.TRACK

    table = {"a": 1}
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("baseline: a lambda doing one dict lookup", lambda: table.get("a")),
        ("mode off (any call)", lambda: off.check(track, "Purchase", ORDER)),
        ("exact name, cold", lambda: cold.check(track, "Order Completed", None)),
        ("near-miss name, cold", lambda: cold.check(track, "completed_order", None)),
        ("custom name, cold", lambda: cold.check(track, "Appointment Reminder Sent", None)),
        ("exact name, memoised", lambda: warm.check(track, "Order Completed", None)),
        ("near-miss name, memoised", lambda: warm.check(track, "completed_order", None)),
        ("custom name, memoised", lambda: warm.check(track, "Appointment Reminder Sent", None)),
        ("Order Completed + 10 props, 2 products", lambda: warm.check(track, "Order Completed", ORDER)),
        ("custom event + 10 custom props", lambda: warm.check(track, "Appointment Reminder Sent", CUSTOM_PROPS)),
        ("identify, 8 traits", lambda: warm.check(CallType.IDENTIFY, None, TRAITS)),
        ("track + integrations {All, Mixpanel}", lambda: warm.check(track, "X", None, INTEGRATIONS)),
    ]
    print(f"checker construction: {build_ms:.0f} ms (once, at start-up)")
    print(f"{'case':<42} {'ns/event':>10} {'x baseline':>10}")
    print(f"{'-' * 42} {'-' * 10} {'-' * 10}")
    # Rounds are interleaved across cases, so that a burst of load elsewhere on the machine hits one round of every
    # case rather than every round of one case; each case keeps its best round.
    best = [float("inf")] * len(cases)
    for _ in range(rounds):
        for index, (_, call) in enumerate(cases):
            best[index] = min(best[index], per_event_ns(call, calls, 1))
    for (label, _), ns in zip(cases, best, strict=True):
        print(f"{label:<42} {ns:>10,.0f} {ns / best[0]:>10.1f}")

    own = score(warm, near_misses(), custom_names())
    real = real_score(warm)
    everything = real_score(warm, kinds=("track", "warehouse"))
    print()
    print(f"{'corpus':<42} {'recall':>10} {'false alarms':>14}")
    print(f"{'-' * 42} {'-' * 10} {'-' * 14}")
    for label, result in (
        ("own (near_misses.tsv, custom.txt)", own),
        ("real partner track events", real),
        ("real, incl. warehouse-only collections", everything),
    ):
        print(
            f"{label:<42} {result.caught:>3}/{result.near_misses:<3} {result.recall:>4.0%}"
            f" {result.flagged:>3}/{result.customs:<3} {result.false_alarm_rate:>5.1%}"
        )


if __name__ == "__main__":
    main()
