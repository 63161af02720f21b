"""Capped exponential backoff with full jitter: ``uniform(0, min(cap, base * 2**attempt))``.

Full jitter spreads the retries of many batches that failed together (an outage) instead of having them return in
waves. A server's own delay (Retry-After) is a floor: the wait is max(backoff, server delay).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """The retry delay policy."""

    base: float
    cap: float

    def delay(self, attempt: int, server_delay: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempt 0 failed first)."""
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 30)))
        jittered = (rng or random).uniform(0.0, ceiling)
        return max(jittered, server_delay or 0.0)
