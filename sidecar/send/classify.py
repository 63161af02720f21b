"""What Segment's answer means for a batch: a pure function of the status, headers or transport error.

=====================  ==============================================================
2xx                    Delivered
3xx                    Retry: redirects are never followed (the body, a writeKey included, stays here)
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
import math
from collections.abc import Mapping
from dataclasses import dataclass

MAX_SERVER_DELAY = 300.0
"""A Retry-After beyond this is treated as this: Segment's SDKs cap it the same way."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """Segment accepted the batch, or (``gateway`` set) a gateway sidecar accepted it for delivery."""

    status: int
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again later; ``after`` is the server's minimum delay in seconds, if it gave one."""

    reason: str
    after: float | None = None
    status: int = 0
    renewed_credentials: bool = False
    """The attempt was refused with credentials that were renewed since: the retry uses the new ones."""


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
    """Every event of the batch was delivered except those at ``rejected`` (index in the batch, reason).

    Segment's Tracking API never answers this; a terminal that learns per-event results (a forwarding sender whose
    receiver answers each event) does. The rejected events are dead-lettered, the others leave the spool.
    """

    rejected: tuple[tuple[int, str], ...]
    status: int = 0
    gateway: str | None = None
    """The gateway that accepted the others (a forwarding sender), as in :class:`Delivered`."""


Outcome = Delivered | Retry | Split | Unauthorized | Permanent | PartlyRejected

_RETRYABLE_4XX = frozenset({408, 410, 429, 460})
_NOT_RETRYABLE_5XX = frozenset({501, 505})


def server_delay(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asked us to wait: Retry-After (seconds or HTTP date) or X-RateLimit-Reset."""
    delays = []
    retry_after = headers.get("Retry-After")
    if retry_after:
        value = retry_after.strip()
        seconds = _seconds(value)
        if seconds is not None:
            delays.append(seconds)
        else:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError, OverflowError):
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


def _seconds(value: str) -> float | None:
    """A delta-seconds value, or None: ``float()`` alone would accept "inf", "nan" or "-3", and ``isdigit()`` alone
    accepts digits ``float()`` refuses (such as "²")."""
    digits = value.replace(".", "", 1)
    if not digits.isascii() or not digits.isdigit():
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def classify(status: int, headers: Mapping[str, str], body: str, now: float) -> Outcome:
    """The outcome of an HTTP answer."""
    detail = f"HTTP {status}" + (f": {body[:300]}" if body else "")
    if 200 <= status < 300:
        return Delivered(status)
    if 300 <= status < 400:
        return Retry(f"HTTP {status} redirect, not followed" + (f": {body[:300]}" if body else ""), None, status)
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
