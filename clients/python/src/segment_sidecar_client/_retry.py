"""When to try a call again, as pure arithmetic shared by the sync and asyncio clients.

A call has one deadline covering every attempt. Each attempt gets the time left. After a retryable failure the next
attempt waits ``max(backoff, RetryInfo delay)``, where backoff is exponential with full jitter; when that wait would
end past the deadline (or the attempts are used up) the failure is raised instead. The message id never changes
between attempts, so the sidecar and Segment treat a retried event as the same event.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from segment_sidecar_client._errors import SidecarError

DEFAULT_TIMEOUT = 10.0
"""Seconds a Spec call or a batch may take, all attempts together."""
DEFAULT_FLUSH_TIMEOUT = 60.0
"""Seconds a flush may take: it waits for delivery to Segment."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed UNAVAILABLE or RESOURCE_EXHAUSTED call is retried; the call's timeout bounds it all."""

    max_attempts: int = 8
    """Attempts in all, the first included."""
    initial_backoff: float = 0.05
    """Upper bound of the first jittered wait, in seconds."""
    max_backoff: float = 2.0
    """Upper bound of any jittered wait, in seconds (a server's RetryInfo may ask for longer)."""
    multiplier: float = 2.0
    """Growth of the backoff bound per attempt."""

    def backoff(self, attempt: int) -> float:
        """The jittered wait after failed attempt number ``attempt`` (1-based), before any RetryInfo."""
        bound = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return random.uniform(0, bound)  # noqa: S311 - jitter, not security


NO_RETRY = RetryPolicy(max_attempts=1)
"""A policy that never retries."""


class Attempts:
    """The retry state of one call: its deadline and how many attempts were made."""

    def __init__(self, policy: RetryPolicy, timeout: float) -> None:
        self._policy = policy
        self._deadline = time.monotonic() + timeout
        self.made = 0

    def remaining(self) -> float:
        """Seconds left before the call's deadline (never negative)."""
        return max(0.0, self._deadline - time.monotonic())

    def start(self) -> float:
        """Count an attempt and return its timeout: the time left."""
        self.made += 1
        return self.remaining()

    def wait_before_next(self, error: SidecarError) -> float | None:
        """Seconds to wait before retrying after ``error``, or None when the error must be raised."""
        if not error.retryable or self.made >= self._policy.max_attempts:
            return None
        delay = max(self._policy.backoff(self.made), error.retry_after or 0.0)
        # The next attempt needs some time of its own after the wait; a wait that eats the deadline is pointless.
        if delay + 0.01 >= self.remaining():
            return None
        return delay
