"""The paced limiter: no burst after idle, starts spaced by the interval, at most the cap in any window."""

from __future__ import annotations

import asyncio
import itertools
import time

from sidecar.collector.store import max_requests_in_window
from sidecar.send.ratelimit import PacedLimiter


async def test_starts_empty_and_paces_every_grant() -> None:
    """Right after creation (a restart), grants are paced: no burst of a full bucket."""
    limiter = PacedLimiter(50)
    grants = []
    for _ in range(60):
        await limiter.acquire()
        grants.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert min(gaps) >= limiter.interval * 0.99
    assert max_requests_in_window(grants, 1.0) <= 50


async def test_concurrent_waiters_share_the_pace() -> None:
    """Many tasks acquiring at once still get spaced grants."""
    limiter = PacedLimiter(100)
    grants: list[float] = []

    async def take() -> None:
        await limiter.acquire()
        grants.append(time.monotonic())

    await asyncio.gather(*(take() for _ in range(40)))
    grants.sort()
    assert min(b - a for a, b in itertools.pairwise(grants)) >= limiter.interval * 0.99
