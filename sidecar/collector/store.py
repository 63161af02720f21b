"""What one collector received: every request (accepted or not) and the events of the accepted ones.

The store is written only by the collector's request handler, on the event loop, and read by tests, the admin
routes and the live page. Waiting is event-driven: each arrival wakes whoever waits in :meth:`Store.wait_until`, so a
test never sleeps a fixed time to see its events.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sidecar.model import write_key_hash

_EPSILON = 1e-9
"""One nanosecond: far below what a clock or a pacer can resolve, far above float rounding of seconds."""

RESET = 0
"""The ``status`` recorded for a request whose connection the collector reset without answering."""


def max_requests_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The largest number of ``times`` that fall inside any one half-open window ``[t, t + window)``.

    This is the sliding-window rate a partner's sender must keep under the cap: with ``window=1.0`` and requests
    started exactly every 20 ms, the answer is 50, not 51. ``times`` need not be sorted (requests are recorded when
    they end, not when they start). A time within :data:`_EPSILON` of a window's end counts as outside it, so that
    float rounding (``49 * 0.02 + 1.0``) does not turn an exact pace into one request too many.
    """
    if window <= 0:
        raise ValueError("window must be positive")
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        # Index of the first time at or past the window's end: everything from i up to it lies inside.
        end = bisect.bisect_left(ordered, start + window - _EPSILON, lo=i)
        best = max(best, end - i)
    return best


@dataclass(slots=True)
class ReceivedRequest:
    """One request to ``/v1/batch`` as the collector saw it, whatever it answered.

    ``write_key`` is the raw key (from Basic auth, or ``writeKey`` in the body): keep it out of logs and pages, use
    :attr:`write_key_hash` there. ``events`` holds the parsed ``batch`` items whenever the body could be parsed,
    also for a request that was refused, so a test can see what a rejected batch contained.
    """

    started_at: float
    """``time.monotonic()`` when the handler began (the headers had arrived)."""
    status: int
    """The HTTP status answered, or :data:`RESET` (0) when the connection was reset without an answer."""
    write_key: str | None = field(default=None, repr=False)
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)
    body_bytes: int = 0
    """Length of the (decompressed) body; the 500 KB limit applies to it."""
    auth_scheme: str | None = None
    """``"basic"``, ``"bearer"``, another scheme in lower case, or None when no Authorization header was sent."""
    headers: dict[str, str] = field(default_factory=dict)
    """A subset of the request headers: User-Agent, Content-Type, Content-Encoding, X-Retry-Count when present."""
    code: str | None = None
    """The ``code`` of the error body answered (``"unauthorized"``, ``"invalid_event"``...), None on success."""
    fault: str | None = None
    """The injected fault that decided the answer (``"down"``, ``"throttle"``, ``"error"``, ``"reset"``), if any."""

    @property
    def accepted(self) -> bool:
        """True when the collector answered 2xx, i.e. the events count as delivered."""
        return 200 <= self.status < 300

    @property
    def write_key_hash(self) -> str | None:
        """The short hash of the write key, safe for pages and logs."""
        return None if self.write_key is None else write_key_hash(self.write_key)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description without the raw key or the events themselves."""
        return {
            "started_at": self.started_at,
            "status": self.status,
            "code": self.code,
            "fault": self.fault,
            "write_key_hash": self.write_key_hash,
            "events": len(self.events),
            "body_bytes": self.body_bytes,
            "auth_scheme": self.auth_scheme,
            "headers": self.headers,
        }


class Store:
    """Every request one collector received, in arrival (completion) order, with awaitable arrival.

    ``keep_events=False`` keeps only ``type``, ``messageId`` and ``userId`` of each event: enough to count deliveries
    by message id when a benchmark sends millions of events, at a fraction of the memory.
    """

    def __init__(self, keep_events: bool = True) -> None:
        self.requests: list[ReceivedRequest] = []
        self.keep_events = keep_events
        self._accepted_events = 0
        self._arrived = asyncio.Event()
        self._subscribers: list[Callable[[ReceivedRequest | None], None]] = []

    def record(self, request: ReceivedRequest) -> None:
        """Add a finished request and wake every waiter and live-page subscriber."""
        if not self.keep_events:
            request.events = [_slim(event) for event in request.events]
        self.requests.append(request)
        if request.accepted:
            self._accepted_events += len(request.events)
        # Swap the event before setting the old one, so a waiter that wakes and waits again waits for the *next* one.
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()
        for subscriber in list(self._subscribers):
            subscriber(request)

    def events(self, write_key: str | None = None) -> list[dict[str, Any]]:
        """The events of every 2xx request, in arrival order, optionally only those sent with ``write_key``."""
        return [
            event
            for request in self.requests
            if request.accepted and (write_key is None or request.write_key == write_key)
            for event in request.events
        ]

    def message_ids(self, write_key: str | None = None) -> list[str]:
        """The ``messageId`` of every delivered event, in arrival order, duplicates included."""
        return [str(event.get("messageId")) for event in self.events(write_key)]

    @property
    def accepted_event_count(self) -> int:
        """How many events arrived in 2xx requests (duplicates included), without building a list."""
        return self._accepted_events

    def statuses(self) -> dict[int, int]:
        """How many requests got each status (0 for a reset connection)."""
        counts: dict[int, int] = {}
        for request in self.requests:
            counts[request.status] = counts.get(request.status, 0) + 1
        return counts

    def max_requests_in_window(self, window: float = 1.0) -> int:
        """The most requests, failed ones included, that started within any sliding ``window`` seconds."""
        return max_requests_in_window((request.started_at for request in self.requests), window)

    # The waits take a ``timeout`` (ASYNC109) so that a failing test reports what did arrive, not just a timeout.
    async def wait_until(self, predicate: Callable[[Store], bool], timeout: float) -> None:  # noqa: ASYNC109
        """Return once ``predicate(store)`` holds, checked on each arrival; raise ``TimeoutError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s ({self._describe()})")
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue  # the loop re-checks once more, then reports

    async def wait_for_events(
        self,
        n: int,
        timeout: float,  # noqa: ASYNC109
        write_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until at least ``n`` events (of ``write_key``, if given) were accepted; return them all.

        Raises ``TimeoutError`` saying how many arrived when ``timeout`` seconds pass first.
        """
        if write_key is None:
            await self.wait_until(lambda store: store.accepted_event_count >= n, timeout)
        else:
            await self.wait_until(lambda store: len(store.events(write_key)) >= n, timeout)
        return self.events(write_key)

    async def wait_for_requests(self, n: int, timeout: float) -> list[ReceivedRequest]:  # noqa: ASYNC109
        """Wait until at least ``n`` requests (accepted or not) were recorded; return them all."""
        await self.wait_until(lambda store: len(store.requests) >= n, timeout)
        return list(self.requests)

    def clear(self) -> None:
        """Forget everything received so far (waiters keep waiting for new arrivals)."""
        self.requests.clear()
        self._accepted_events = 0

    def subscribe(self, callback: Callable[[ReceivedRequest | None], None]) -> Callable[[], None]:
        """Call ``callback`` with each new request, and with None when the collector stops; return the unsubscriber."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def close_subscribers(self) -> None:
        """Tell every subscriber the collector is stopping (they receive None)."""
        for subscriber in list(self._subscribers):
            subscriber(None)

    def _describe(self) -> str:
        return f"{len(self.requests)} requests, {self._accepted_events} events accepted, statuses {self.statuses()}"


def _slim(event: dict[str, Any]) -> dict[str, Any]:
    """The fields kept when the store does not keep whole events."""
    return {key: event[key] for key in ("type", "messageId", "userId") if key in event}
