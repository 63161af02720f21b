"""When to try a call again, as pure arithmetic shared by the sync and asyncio clients.

The policy is the one every client of this repository follows, written once in ``clients/retry-policy.json`` (a
gRPC service config; ``tests/test_retry.py`` fails when the defaults below drift from it):

- retried: UNAVAILABLE, RESOURCE_EXHAUSTED, and CANCELLED that the caller did not cause (gRPC answers it under
  overload); never INVALID_ARGUMENT or any other code;
- at most 5 attempts, the first included, all within the call's one deadline (10 s by default);
- the wait before retry ``n`` is random in ``[0, min(2 s, 0.2 s * 2**(n-1))]`` (full jitter, as gRPC's own retries),
  or the server's ``google.rpc.RetryInfo`` / ``grpc-retry-pushback-ms`` delay when that is longer;
- give up when the attempts are used, or when the wait would leave the next attempt no time before the deadline.

The message id never changes between attempts, so the sidecar and Segment treat a retried event as the same event.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import grpc

from segment_sidecar_client._errors import SidecarError

DEFAULT_TIMEOUT = 10.0
"""Seconds a Spec call or a batch may take, all attempts together."""
DEFAULT_FLUSH_TIMEOUT = 60.0
"""Seconds a flush may take: it waits for delivery to Segment."""

_CONNECT_FAILURES = ("failed to connect", "connection refused", "no such file", "dns resolution failed")
"""Parts of gRPC's own messages for a sidecar that cannot be reached (nothing listens, no socket file)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed UNAVAILABLE, RESOURCE_EXHAUSTED or CANCELLED call is retried; the call's timeout bounds it all."""

    max_attempts: int = 5
    """Attempts in all, the first included."""
    initial_backoff: float = 0.2
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
        self._started = time.monotonic()
        self._deadline = self._started + timeout
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

    def gave_up(self, error: SidecarError, address: str) -> SidecarError:
        """The error to raise for the last failure.

        A retryable one says how many attempts were made; one that never reached the sidecar names the address and
        what to check.
        """
        if not error.retryable:
            return error
        took = time.monotonic() - self._started
        tried = f"gave up after {self.made} attempt{'s' if self.made != 1 else ''} in {took:.1f} s"
        if error.code == grpc.StatusCode.UNAVAILABLE and any(p in error.message.lower() for p in _CONNECT_FAILURES):
            message = (
                f"cannot connect to the sidecar at {address}: is it running, and is SIDECAR_ADDRESS right? "
                f"({tried}; {error.message})"
            )
        else:
            message = f"{error.message} ({tried})"
        return SidecarError(error.code, message, retry_after=error.retry_after, attempts=self.made)
