"""One request budget for a whole fleet of sidecars, kept in Redis: reserved start times on Redis's own clock.

Every sidecar of one partner takes its start times from one GCRA schedule held under one Redis key. A Lua script,
atomic in Redis, reads ``TIME``, and hands out ``count`` consecutive start times ("slots") spaced one interval apart,
``interval = 1 / (cap * headroom)``, starting at the schedule's end or at Redis's *now*, whichever is later. There is
no burst: after an idle spell the schedule restarts at now, never in the past, so the budget starts empty. A sidecar
reserves a few slots per round trip (at most ``max_reservation`` seconds' worth) so it does not pay a round trip per
request, and every call queues behind the slots already handed out, which makes the schedule a fair FIFO queue: a
busy sidecar cannot hold more than one reservation ahead while an idle one asks.

The bound this guarantees (see docs/fleet.md). Let ``D`` be the *tolerance* (:func:`tolerance`: 0.1 s). Each reply
bounds Redis's clock minus the local one (``TIME`` was read between sending and receiving); :class:`ClockOffset`
keeps the intersection of those bounds, so the mapping is as precise as the fastest round trip. A sidecar maps a slot
``s`` with the *lowest* possible offset, so it never starts a request before ``s`` on Redis's clock, and it drops a
slot it reaches later than ``D`` minus the offset's uncertainty after its mapped time (a late event-loop wake-up, a
waiter that went away). So every request of the fleet starts within ``[s, s + D]`` of its own slot, slots are at
least ``interval`` apart, and the starts inside any one-second window come from slots inside a window of ``1 + D``
seconds::

    starts in any 1 s window  <=  ceil((1 + D) * headroom * cap)  =  ceil(0.99 * cap)  =  cap   (D = 0.1, headroom 0.9)

So the grants themselves never exceed the cap; the contract's 20% (:data:`CONTRACT_EXCESS`) is left entirely to what
happens after a grant (the request's trip to the server). :func:`tolerance` never picks a ``D`` that would let the
bound pass ``floor(1.2 * cap)``. Assumed: Redis's clock does not step by more than a few milliseconds while slots are
outstanding (a backward step of more than :data:`CLOCK_STEP_RESET` restarts the schedule), and the sender starts the
request as soon as :meth:`RedisLimiter.acquire` returns (within ``LATE_GRANT_SECONDS``: the sender chain replaces
a grant it holds longer, see :mod:`sidecar.send.chain`).

Connecting (TCP, TLS, AUTH, loading the script) happens in the background from :meth:`RedisLimiter.start`, bounded
by ``connect_timeout``. When Redis is unreachable, failing or slow (every later call is bounded by ``timeout``), the
limiter switches to a local :class:`~sidecar.send.ratelimit.PacedLimiter` of ``cap / fleet_size``, logs
``ratelimit_fallback`` once per outage (with the URL's credentials redacted), and probes Redis in the background every
``probe_interval``. When Redis answers again it is on *probation* for ``probation`` seconds: it takes Redis slots but
no faster than its fallback rate, which gives every other sidecar time to notice Redis is back before any of them
takes the whole budget. ``fallback_seconds`` counts the time spent in fallback, for the metrics.

The script and the slot arithmetic are in :mod:`sidecar.send._fleet_budget`; the Redis client, the default key and
the redacted URL in :mod:`sidecar.send._fleet_redis` (their public names are re-exported here).
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import redis.asyncio as redis
import structlog

from sidecar.send._fleet_budget import (
    CLOCK_DRIFT,
    CLOCK_STEP_RESET,
    CONTRACT_EXCESS,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    DEFAULT_TOLERANCE,
    ClockOffset,
    FleetBudget,
    FleetUnavailableError,
    Reservation,
    SlotBook,
    bound,
    tolerance,
)
from sidecar.send._fleet_redis import DEFAULT_KEY_PREFIX, client, default_key, redact_url
from sidecar.send.ratelimit import HEADROOM, PacedLimiter
from sidecar.tasks import cancel_and_wait

if TYPE_CHECKING:
    from sidecar.config import Settings

__all__ = [
    "CLOCK_DRIFT",
    "CLOCK_STEP_RESET",
    "CONTRACT_EXCESS",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOLERANCE",
    "ClockOffset",
    "FleetBudget",
    "FleetUnavailableError",
    "RedisLimiter",
    "Reservation",
    "bound",
    "default_key",
    "redact_url",
    "tolerance",
]

_log = structlog.get_logger(__name__)

DEFAULT_MAX_RESERVATION: Final = 0.25
"""At most this many seconds' worth of slots are reserved per round trip (and at least one slot)."""

DEFAULT_MAX_SLOTS: Final = 16
"""At most this many slots are reserved per round trip."""

DEFAULT_PROBE_INTERVAL: Final = 0.5
"""Seconds between two probes of an unreachable Redis."""

_VAGUE_REPLIES_LIMIT: Final = 3
"""Replies in a row too slow to place slots by, after which Redis counts as too slow and the fallback takes over."""


class _Mode(enum.Enum):
    REDIS = "redis"
    FALLBACK = "fallback"
    PROBATION = "probation"


class RedisLimiter:
    """The fleet-wide :class:`~sidecar.send.ratelimit.RateLimiter`: slots from Redis, a local pace without it.

    ``requests_per_second`` is the cap of the *whole fleet*; ``fleet_size`` sidecars share it and, when Redis is
    unreachable, each paces at ``requests_per_second / fleet_size``. ``url`` may be ``redis://`` or ``rediss://`` and
    may carry a password (and TLS options as query parameters, such as ``ssl_ca_certs``); it is never logged
    unredacted. Used before :meth:`start` it starts itself; used after :meth:`stop` it paces locally, quietly.
    """

    def __init__(
        self,
        url: str,
        key: str,
        requests_per_second: float,
        fleet_size: int = 1,
        headroom: float = HEADROOM,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_reservation: float = DEFAULT_MAX_RESERVATION,
        max_slots: int = DEFAULT_MAX_SLOTS,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        probation: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if requests_per_second <= 0 or fleet_size < 1:
            raise ValueError("requests_per_second must be positive and fleet_size at least 1")
        self._url = url
        self._safe_url = redact_url(url)
        self._key = key
        self._clock = clock
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._probe_interval = probe_interval
        # Every other sidecar finishes a probe at least once per (probe interval + connect timeout).
        self._probation = probe_interval + connect_timeout if probation is None else probation
        self._interval = 1.0 / (requests_per_second * headroom)
        self._tolerance = tolerance(requests_per_second, headroom)
        self._max_slots = max(1, min(max_slots, math.floor(max_reservation / self._interval)))
        self._fallback = PacedLimiter(requests_per_second / fleet_size, headroom, clock)
        self._book = SlotBook()
        self._offset = ClockOffset()
        self._vague_replies = 0
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._streak = 1
        self._last_grant = -math.inf
        self._mode = _Mode.REDIS
        self._fallback_since = 0.0
        self._fallback_total = 0.0
        self._probation_until = 0.0
        self._probation_next = 0.0
        self._client: redis.Redis | None = None
        self._budget: FleetBudget | None = None
        self._refill_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._stopped = False
        self.grants = 0
        """Requests permitted so far (Redis slots and fallback together)."""
        self.outages = 0
        """Times the limiter switched to the local fallback."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisLimiter:
        """The limiter a sidecar builds when ``SIDECAR_REDIS_URL`` is set.

        The key is ``SIDECAR_REDIS_KEY`` or, by default, derived from ``SIDECAR_INTEGRATION_NAME``; the cap is
        ``SIDECAR_MAX_REQUESTS_PER_SECOND`` for the whole fleet; the fallback is that cap / ``SIDECAR_FLEET_SIZE``.
        """
        if settings.redis_url is None:
            raise ValueError("RedisLimiter needs SIDECAR_REDIS_URL")
        return cls(
            settings.redis_url,
            settings.redis_key or default_key(settings.integration_name),
            settings.max_requests_per_second,
            settings.fleet_size,
        )

    # --- what the metrics read

    @property
    def key(self) -> str:
        """The Redis key of the budget this limiter shares."""
        return self._key

    @property
    def fallback_requests_per_second(self) -> float:
        """The local pace while Redis is unreachable: the cap / fleet size, times the headroom."""
        return 1.0 / self._fallback.interval

    @property
    def mode(self) -> str:
        """``redis``, ``probation`` (Redis is back, paced at the fallback rate for a while) or ``fallback``."""
        return self._mode.value

    @property
    def fallback_seconds(self) -> float:
        """Seconds spent in fallback since start, the current outage included."""
        outage = self._mode is _Mode.FALLBACK and not self._stopped
        current = self._clock() - self._fallback_since if outage else 0.0
        return self._fallback_total + current

    @property
    def round_trips(self) -> int:
        """Redis commands sent so far (reservations, script loads, probes)."""
        return self._budget.round_trips if self._budget is not None else 0

    @property
    def wasted_slots(self) -> int:
        """Reserved slots never used: reached too late, held when stopping, or fetched by too slow a round trip."""
        return self._book.wasted

    @property
    def slots_per_reservation(self) -> int:
        """The most slots one round trip reserves."""
        return self._max_slots

    @property
    def tolerance(self) -> float:
        """The lateness allowance ``D`` of this limiter, in seconds (see the module docstring)."""
        return self._tolerance

    # --- lifecycle

    async def start(self) -> None:
        """Build the Redis client and start connecting in the background; returns at once, even when Redis is down.

        The first :meth:`acquire` waits for that connection (at most the connect timeout, 1 s), so a TLS handshake
        is not mistaken for a slow Redis.
        """
        if self._client is not None or self._stopped:
            return
        self._client = client(self._url, self._connect_timeout)
        self._budget = FleetBudget(
            self._client,
            self._key,
            self._interval,
            timeout=self._timeout,
            connect_timeout=self._connect_timeout,
            clock=self._clock,
        )
        self._connect_task = asyncio.create_task(self._connect(), name="fleet-connect")

    async def _connect(self) -> None:
        assert self._budget is not None
        try:
            await self._budget.connect()
        except FleetUnavailableError as exc:
            self._enter_fallback(str(exc))
        except Exception as exc:  # noqa: BLE001 - the same: an unexpected failure still means "no Redis"
            self._enter_fallback(f"{type(exc).__name__}: {exc}")

    async def stop(self) -> None:
        """Stop probing and close the client; idempotent, safe without :meth:`start`."""
        if self._stopped:
            return
        self._stopped = True
        await cancel_and_wait((self._connect_task, self._probe_task, self._refill_task))
        if self._mode is _Mode.FALLBACK:
            self._fallback_total += self._clock() - self._fallback_since
        self._book.clear()
        if self._client is not None:
            await self._client.aclose()

    # --- the hot path

    async def acquire(self) -> None:
        """Wait until one more request may start now. Cancellation gives a held slot back to the next waiter.

        Waiters queue on a lock in arrival order. Only a reservation round trip (bounded by the timeout) or the
        pacing itself ever makes a caller wait; after one failed call the limiter paces locally until a background
        probe finds Redis again.
        """
        if self._stopped:  # a straggler during shutdown: no Redis any more, but still paced
            await self._fallback.acquire()
            return
        if self._budget is None:
            await self.start()
        self._waiting += 1
        try:
            async with self._lock:
                await self._acquire_locked()
        finally:
            self._waiting -= 1

    async def _acquire_locked(self) -> None:
        while True:
            if self._mode is _Mode.FALLBACK:
                # The local pace starts one fallback interval after the last grant, Redis slot or not, so that
                # switching modes never puts two of this sidecar's starts closer than either mode would.
                await _sleep_until(self._last_grant + self._fallback.interval, self._clock)
                await self._fallback.acquire()
                self._last_grant = self._clock()
                self.grants += 1
                return
            probation = self._mode is _Mode.PROBATION
            if probation:
                if self._clock() >= self._probation_until:
                    self._mode = _Mode.REDIS
                    probation = False
                else:
                    # Pace at the fallback rate *before* reserving, so the slot is fresh when it is taken.
                    await _sleep_until(self._probation_next, self._clock)
            slot = self._book.take(self._clock())
            if slot is None:
                await self._refill(1 if probation or self._vague_replies else self._demand())
                continue
            start, deadline = slot
            try:
                await _sleep_until(start, self._clock)
            except asyncio.CancelledError:
                self._book.give_back(slot)
                raise
            now = self._clock()
            if now > deadline:  # woke too late: starting now could crowd a later slot's window
                self._book.wasted += 1
                continue
            if probation:
                self._probation_next = now + self._fallback.interval
            self._last_grant = now
            self.grants += 1
            return

    def _demand(self) -> int:
        """How many slots to reserve: the waiters, or more while requests follow each other as fast as granted.

        The delivery scheduler asks for one grant at a time, so the number of waiters alone would cost a round trip
        per request. A caller that asks again within two intervals of its last grant is being held back by the
        pace: the reservation doubles each time (1, 2, 4, ... up to the per-call maximum), and falls back to one
        after a pause, so a quiet sidecar never reserves slots it will not use.
        """
        busy = self._clock() - self._last_grant <= 2 * self._interval
        self._streak = min(self._max_slots, self._streak * 2) if busy else 1
        return max(self._streak, self._waiting)

    async def _refill(self, wanted: int) -> None:
        """Run one reservation round trip, shielded so a cancelled waiter does not cut a Redis call in half."""
        if self._refill_task is None:
            count = max(1, min(self._max_slots, wanted - len(self._book)))
            self._refill_task = asyncio.create_task(self._reserve(count), name="fleet-reserve")
        await asyncio.shield(self._refill_task)

    async def _reserve(self, count: int) -> None:
        assert self._budget is not None
        try:
            if self._connect_task is not None:
                await self._connect_task
                self._connect_task = None
                if self._mode is _Mode.FALLBACK:
                    return
            reservation = await self._budget.reserve(count)
        except FleetUnavailableError as exc:
            self._enter_fallback(str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever goes wrong with Redis must end in the fallback, not a crash
            self._enter_fallback(f"{type(exc).__name__}: {exc}")
        else:
            self._offset.update(reservation)
            if self._book.add(reservation, self._offset, self._tolerance):
                self._vague_replies = 0
                return
            # The round trips so far were too slow to place slots precisely (a cold connection, a busy loop): try
            # again for one slot; only Redis that stays that slow counts as unusable.
            self._vague_replies += 1
            if self._vague_replies >= _VAGUE_REPLIES_LIMIT:
                uncertainty = self._offset.uncertainty * 1000
                self._enter_fallback(f"Redis's clock is known only within {uncertainty:.0f} ms, too loosely to pace by")
        finally:
            self._refill_task = None

    # --- fallback and recovery

    def _enter_fallback(self, reason: str) -> None:
        if self._mode is _Mode.FALLBACK or self._stopped:
            return
        self._mode = _Mode.FALLBACK
        self._fallback_since = self._clock()
        self.outages += 1
        _log.warning(
            "ratelimit_fallback",
            redis=self._safe_url,
            key=self._key,
            reason=reason,
            fallback_requests_per_second=round(self.fallback_requests_per_second, 3),
        )
        self._probe_task = asyncio.create_task(self._probe(), name="fleet-probe")

    async def _probe(self) -> None:
        """Try Redis every probe interval until it answers, then put the limiter on probation."""
        assert self._budget is not None
        while True:
            await asyncio.sleep(self._probe_interval)
            try:
                await self._budget.connect()  # reloads the script too: a restarted Redis has none
            except Exception:  # noqa: BLE001, S112 - still unreachable, whatever the reason: try again later
                continue
            break
        now = self._clock()
        outage = now - self._fallback_since
        self._fallback_total += outage
        self._mode = _Mode.PROBATION
        self._probation_until = now + self._probation
        self._probation_next = self._last_grant + self._fallback.interval
        self._vague_replies = 0
        self._probe_task = None
        _log.info("ratelimit_recovered", redis=self._safe_url, key=self._key, fallback_seconds=round(outage, 3))


async def _sleep_until(deadline: float, clock: Callable[[], float]) -> None:
    """Sleep until ``clock()`` reaches ``deadline`` (the event loop's timers run on the same monotonic clock)."""
    delay = deadline - clock()
    if delay > 0:
        await asyncio.sleep(delay)
