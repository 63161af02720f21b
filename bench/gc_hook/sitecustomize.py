"""The garbage collector's work in a sidecar under ``bench/gc_cost.py``: imported at start-up through ``PYTHONPATH``.

Times every collection (``gc.callbacks``) from SIGUSR1 on; SIGUSR2 writes the totals as JSON to the file named by
``BENCH_GC_REPORT``. Not part of the package: nothing else puts this folder on a path.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import time
from typing import Any

_started: list[float] = []
_totals: dict[str, Any] = {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0], "longest": 0.0}


def _on_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started.append(time.perf_counter())
    elif _started:
        spent = time.perf_counter() - _started.pop()
        generation = info["generation"]
        _totals["collections"][generation] += 1
        _totals["seconds"][generation] += spent
        _totals["longest"] = max(_totals["longest"], spent)


def _reset(signum: int, frame: object) -> None:
    _totals.update(collections=[0, 0, 0], seconds=[0.0, 0.0, 0.0], longest=0.0)


def _report(signum: int, frame: object) -> None:
    path = os.environ["BENCH_GC_REPORT"]
    with open(f"{path}.part", "w", encoding="utf-8") as out:
        json.dump({**_totals, "threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}, out)
    os.replace(f"{path}.part", path)  # whole, or not there yet: the benchmark waits for the name


if os.environ.get("BENCH_GC_REPORT"):
    gc.callbacks.append(_on_collection)
    signal.signal(signal.SIGUSR1, _reset)
    signal.signal(signal.SIGUSR2, _report)
