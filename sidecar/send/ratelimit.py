"""Pacing of HTTP requests to Segment: at most N requests start in any one-second window, retries included.

The partner cap is a sliding-window rule, and the budget starts *empty* after a restart: a token bucket whose burst
equals N can start close to 2N requests in one window after an idle spell. So the limiter here is GCRA with no
burst: each grant reserves the next start time one interval after the previous *actual* start, which keeps every
pair of starts at least one interval apart even when the event loop wakes a waiter late. It paces at
``headroom`` (90%) of the cap so that jitter between here and the receiving server cannot push a window over it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

HEADROOM = 0.9
"""Fraction of the cap the limiter paces at: a margin against scheduling and network jitter."""


class RateLimiter(Protocol):
    """Grants permission to start one HTTP request; every attempt to Segment takes one grant."""

    async def start(self) -> None:
        """Begin (connect, start background work); return quickly."""

    async def stop(self) -> None:
        """Release resources; idempotent, and safe without :meth:`start`."""

    async def acquire(self) -> None:
        """Wait until one more request may start now. Cancellation gives the slot up."""


class PacedLimiter:
    """A single-process GCRA limiter with no burst; fair to waiters in arrival order."""

    __slots__ = ("_clock", "_interval", "_lock", "_next_start")

    def __init__(
        self, requests_per_second: float, headroom: float = HEADROOM, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = 1.0 / (requests_per_second * headroom)
        self._clock = clock
        self._next_start = 0.0
        self._lock = asyncio.Lock()

    @property
    def interval(self) -> float:
        """Seconds between two request starts."""
        return self._interval

    async def start(self) -> None:
        """Nothing to start: the budget is empty until the first grant, which may happen at once."""

    async def stop(self) -> None:
        """Nothing to release."""

    async def acquire(self) -> None:
        """Wait for the next start time; the lock makes waiters queue in order instead of racing for one slot."""
        async with self._lock:
            delay = self._next_start - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            # Reserve from the actual grant time, not the planned one: a late wake-up never bunches two starts.
            self._next_start = self._clock() + self._interval
