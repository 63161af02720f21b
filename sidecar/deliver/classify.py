"""What Segment's answer means for a batch: a pure function of the status, headers or transport error.

=====================  ==============================================================
2xx                    Delivered
400, 413               Split: the batch itself is bad; halve it to isolate the event
401, 403               Unauthorized: the write key is revoked or in the wrong region
408, 410, 429, 460,    Retry, after max(backoff, Retry-After / X-RateLimit-Reset)
5xx but 501 and 505
network error, timeout Retry
anything else          Permanent: dead-letter the batch with Segment's answer
=====================  ==============================================================
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass

MAX_SERVER_DELAY = 300.0
"""A Retry-After beyond this is treated as this: Segment's SDKs cap it the same way."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """Segment accepted the batch."""

    status: int


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again later; ``after`` is the server's minimum delay in seconds, if it gave one."""

    reason: str
    after: float | None = None
    status: int = 0


@dataclass(frozen=True, slots=True)
class Split:
    """The batch was refused as malformed or too large: deliver its halves separately."""

    reason: str
    status: int


@dataclass(frozen=True, slots=True)
class Unauthorized:
    """The write key was refused (revoked, or sent to the wrong region)."""

    reason: str
    status: int


@dataclass(frozen=True, slots=True)
class Permanent:
    """Retrying cannot help; the events become dead letters."""

    reason: str
    status: int


@dataclass(frozen=True, slots=True)
class PartlyRejected:
    """Every event was delivered except those at ``rejected``'s indexes, refused each with its reason (dead letters).

    Segment's HTTP API never answers this; a gateway's ``Batch`` RPC does (edge mode: per-event validation results).
    """

    rejected: tuple[tuple[int, str], ...]
    status: int = 200


Outcome = Delivered | Retry | Split | Unauthorized | Permanent | PartlyRejected

_RETRYABLE_4XX = frozenset({408, 410, 429, 460})
_NOT_RETRYABLE_5XX = frozenset({501, 505})


def server_delay(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asked us to wait: Retry-After (seconds or HTTP date) or X-RateLimit-Reset."""
    delays = []
    retry_after = headers.get("Retry-After")
    if retry_after:
        value = retry_after.strip()
        if value.replace(".", "", 1).isdigit():
            delays.append(float(value))
        else:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                delays.append(max(0.0, when.timestamp() - now))
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            seconds = float(reset)
        except ValueError:
            seconds = -1.0
        # Segment documents seconds to wait; a value that looks like a Unix time is read as one.
        if seconds > 1e9:
            seconds -= now
        if seconds >= 0:
            delays.append(seconds)
    if not delays:
        return None
    return min(max(delays), MAX_SERVER_DELAY)


def classify(status: int, headers: Mapping[str, str], body: str, now: float) -> Outcome:
    """The outcome of an HTTP answer."""
    detail = f"HTTP {status}" + (f": {body[:300]}" if body else "")
    if 200 <= status < 300:
        return Delivered(status)
    if status in (400, 413):
        return Split(detail, status)
    if status in (401, 403):
        return Unauthorized(detail, status)
    if status in _RETRYABLE_4XX or (status >= 500 and status not in _NOT_RETRYABLE_5XX):
        return Retry(detail, server_delay(headers, now), status)
    return Permanent(detail, status)


def classify_error(error: BaseException) -> Outcome:
    """A transport failure (reset, refused, timeout) is always worth another attempt."""
    name = type(error).__name__
    text = str(error) or name
    return Retry(f"network error: {name}: {text}"[:300])
