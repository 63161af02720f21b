"""How many of a key's events fit one request body: pure, shared by the scheduler and its tests."""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.model import SpooledEvent


def fit(events: Sequence[SpooledEvent], overhead: int, max_bytes: int) -> list[SpooledEvent]:
    """The longest prefix of ``events`` whose request body (envelope + payloads + commas) fits ``max_bytes``.

    At least one event, even alone too big: the receiver's 413 then isolates and dead-letters it.
    """
    size = overhead
    kept = 0
    for event in events:
        cost = len(event.payload) + (1 if kept else 0)
        if kept and size + cost > max_bytes:
            break
        size += cost
        kept += 1
    return list(events[:kept])
