"""The paced limiter: no burst after idle, starts spaced by the interval, at most the cap in any window."""

from __future__ import annotations

import asyncio
import itertools
import time

from sidecar.collector.store import max_requests_in_window
from sidecar.send.ratelimit import PacedLimiter


class GrantClock:
    """``time.monotonic`` that remembers its last reading: the grant time the limiter itself reserved from.

    A time the test reads after ``acquire()`` returns can be late by however long the machine paused the process in
    between (3.8 ms once under CI load), which shortens the next gap without the limiter having done anything wrong.
    """

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self) -> float:
        self.last = time.monotonic()
        return self.last


async def test_starts_empty_and_paces_every_grant() -> None:
    """Right after creation (a restart), grants are paced: no burst of a full bucket."""
    clock = GrantClock()
    limiter = PacedLimiter(50, clock=clock)
    grants = []
    for _ in range(60):
        await limiter.acquire()
        grants.append(clock.last)
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert min(gaps) >= limiter.interval * 0.99
    assert max_requests_in_window(grants, 1.0) <= 50


async def test_concurrent_waiters_share_the_pace() -> None:
    """Many tasks acquiring at once still get spaced grants."""
    clock = GrantClock()
    limiter = PacedLimiter(100, clock=clock)
    grants: list[float] = []

    async def take() -> None:
        await limiter.acquire()
        # No other task runs between the limiter's last clock reading and this line: there is no await in between.
        grants.append(clock.last)

    await asyncio.gather(*(take() for _ in range(40)))
    grants.sort()
    assert min(b - a for a, b in itertools.pairwise(grants)) >= limiter.interval * 0.99
