"""One request budget for a whole fleet of sidecars, kept in Redis: reserved start times on Redis's own clock.

Every member of a partner's fleet takes its start times ("slots") from one GCRA schedule under one Redis key. A Lua
script, atomic in Redis, reads ``TIME``, renews the caller's *lease* (:data:`LEASE`) in the members' set, and hands
out consecutive slots starting at the schedule's end or at Redis's *now*, whichever is later, never more than
:data:`LEAD` ahead of now. The spacing gives each member whose lease is running its share of the rate: ``interval =
fleet_size / (live * cap * headroom)``. No burst: after an idle spell the schedule restarts at now. A member reserves
a few slots per round trip (doubling while it is busy), and every call queues behind the slots already handed out,
a fair FIFO queue; a quiet member renews its lease every :data:`HEARTBEAT` so that its share stays in the schedule.

The bound (docs/fleet.md). Each reply bounds Redis's clock minus the local one; :class:`ClockOffset` keeps the
intersection, and slots are mapped with the lowest offset, never early. A slot reached more than the tolerance ``D``
(:func:`tolerance`, 0.1 s) after its time is dropped. So every start is within ``[s, s + D]`` of its slot, and the
schedule's starts in any one-second window are at most ``(1 + D) * headroom * cap + 1``.

A member's *share* (:func:`~sidecar.send._fleet_budget.local_rate`) is in the schedule or in its own hands, never
both: every call carries a validity (``valid_until``, Redis's latest possible time when its time limit ends), so
whatever it does in Redis happens by then; its lease ends :data:`LEASE` later and the slots handed out meanwhile lie
at most :data:`LEAD` further and start at most ``D`` late. Only after that (:attr:`RedisLimiter.local_from`, plus
one local interval) may a member that lost Redis (refused, failing, silent, or Redis lost the schedule: a call finds
its running lease missing) pace on its own share; until then it uses only the slots it holds. It rejoins the
schedule only after a probe finds Redis and that same point has passed, one local interval after its last start on
its own. A new process starts the same way, for a dead predecessor may still count. So, per member, the starts in
any window are at most its share times ``1 + D``, and the fleet's at most ``(1 + D) * headroom * cap + 1`` (the cap)
whatever fails. Lateness only delays: a late wake-up drops a slot or stretches the local pace, never the other way.

The script and the arithmetic are in :mod:`sidecar.send._fleet_budget`; the Redis client, the default key and the
redacted URL in :mod:`sidecar.send._fleet_redis` (their public names are re-exported here).
"""

from __future__ import annotations

import asyncio
import enum
import math
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis.asyncio as redis
import structlog

from sidecar.send._fleet_budget import (
    CLOCK_DRIFT,
    CLOCK_STEP_RESET,
    CONTRACT_EXCESS,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESERVATION,
    DEFAULT_MAX_SLOTS,
    DEFAULT_PROBE_INTERVAL,
    DEFAULT_TIMEOUT,
    DEFAULT_TOLERANCE,
    HEARTBEAT,
    LEAD,
    LEASE,
    VAGUE_REPLIES_LIMIT,
    ClockOffset,
    FleetBudget,
    FleetUnavailableError,
    Reservation,
    SlotBook,
    bound,
    local_rate,
    sleep_until,
    tolerance,
)  # fmt: skip
from sidecar.send._fleet_redis import DEFAULT_KEY_PREFIX, client, default_key, redact_url
from sidecar.send.ratelimit import HEADROOM, PacedLimiter
from sidecar.tasks import Supervisor

if TYPE_CHECKING:
    from sidecar.config import Settings

__all__ = [
    "CLOCK_DRIFT", "CLOCK_STEP_RESET", "CONTRACT_EXCESS", "DEFAULT_CONNECT_TIMEOUT", "DEFAULT_KEY_PREFIX",
    "DEFAULT_TIMEOUT", "DEFAULT_TOLERANCE", "HEARTBEAT", "LEAD", "LEASE", "ClockOffset", "FleetBudget",
    "FleetUnavailableError", "RedisLimiter", "Reservation", "bound", "default_key", "local_rate", "redact_url",
    "tolerance",
]  # fmt: skip

_log = structlog.get_logger(__name__)


class _Mode(enum.Enum):
    REDIS = "redis"
    FALLBACK = "fallback"


class RedisLimiter:
    """The fleet-wide :class:`~sidecar.send.ratelimit.RateLimiter`: slots from Redis, its own share without it.

    ``requests_per_second`` is the cap of the *whole fleet* of ``fleet_size`` members. On Redis, the members whose
    lease is running share the schedule at their shares' sum; without Redis, a member paces alone at its own share
    (:func:`~sidecar.send._fleet_budget.local_rate`), and only once its share can no longer be in the schedule.
    ``url`` may be ``redis://`` or ``rediss://`` and may carry a password (and TLS options as query parameters, such
    as ``ssl_ca_certs``); it is never logged unredacted. Used before :meth:`start` it starts itself; used after
    :meth:`stop` it paces locally, quietly.
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if requests_per_second <= 0 or fleet_size < 1:
            raise ValueError("requests_per_second must be positive and fleet_size at least 1")
        self._url = url
        self._safe_url = redact_url(url)
        self._key = key
        self._fleet_size = fleet_size
        self._member = secrets.token_hex(8)
        self._clock = clock
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._probe_interval = probe_interval
        self._interval = 1.0 / (requests_per_second * headroom)
        self._tolerance = tolerance(requests_per_second, headroom)
        self._max_slots = max(1, min(max_slots, math.floor(max_reservation / self._interval)))
        self._fallback = PacedLimiter(local_rate(requests_per_second, fleet_size, headroom), 1.0, clock)
        self._book = SlotBook()
        self._offset = ClockOffset()
        self._vague_replies = 0
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._streak = 1
        self._last_grant = -math.inf
        self._last_local = -math.inf
        self._mode = _Mode.REDIS
        self._fallback_since = 0.0
        self._fallback_total = 0.0
        self._lease_end = 0  # Redis µs: this member's lease as the last reply told it (0: none to vouch for)
        self._last_call = -math.inf  # local time the last call that renews the lease was sent
        self._local_from = 0.0  # local time before which this member's share may still be in the schedule
        self._not_before = 0.0  # local time before which the schedule has no room (it reaches LEAD ahead)
        self._redis_back = False
        self._connected: asyncio.Event | None = None
        self._refilled: asyncio.Event | None = None
        self._tasks = Supervisor("fleet")
        self._client: redis.Redis | None = None
        self._budget: FleetBudget | None = None
        self._stopped = False
        self.grants = 0
        """Requests permitted so far (Redis slots and fallback together)."""
        self.outages = 0
        """Times the limiter switched to the local fallback."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisLimiter:
        """The limiter a sidecar builds when ``SIDECAR_REDIS_URL`` is set.

        The key is ``SIDECAR_REDIS_KEY`` or, by default, derived from ``SIDECAR_INTEGRATION_NAME``; the cap is
        ``SIDECAR_MAX_REQUESTS_PER_SECOND`` for the whole fleet of ``SIDECAR_FLEET_SIZE`` members.
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
        """The local pace while Redis is unreachable: this member's share (see ``local_rate``)."""
        return 1.0 / self._fallback.interval

    @property
    def mode(self) -> str:
        """``redis`` (slots from the schedule) or ``fallback`` (its held slots, then its own share)."""
        return self._mode.value

    @property
    def fallback_seconds(self) -> float:
        """Seconds spent in fallback since start, the current outage included."""
        outage = self._mode is _Mode.FALLBACK and not self._stopped
        current = self._clock() - self._fallback_since if outage else 0.0
        return self._fallback_total + current

    @property
    def round_trips(self) -> int:
        """Redis commands sent so far (reservations, heartbeats, script loads, probes)."""
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

    @property
    def local_from(self) -> float:
        """The local monotonic time from which this member may pace on its own share (see the module docstring)."""
        return self._local_from

    # --- lifecycle

    async def start(self) -> None:
        """Build the Redis client and start connecting in the background; returns at once, even when Redis is down.

        The first :meth:`acquire` waits for that connection (at most the connect timeout, 1 s), so a TLS handshake
        is not mistaken for a slow Redis. A new process may hold a dead predecessor's place in the members' count, so
        its own share starts only once that place could have expired.
        """
        if self._client is not None or self._stopped:
            return
        self._client = client(self._url, self._connect_timeout)
        self._budget = FleetBudget(
            self._client,
            self._key,
            self._interval,
            member=self._member,
            fleet_size=self._fleet_size,
            timeout=self._timeout,
            connect_timeout=self._connect_timeout,
            clock=self._clock,
        )
        self._local_from = self._clock() + LEASE + LEAD + self._tolerance + self._fallback.interval
        self._connected = asyncio.Event()
        await self._tasks.start()
        self._tasks.spawn("fleet-connect", self._connect)
        self._tasks.keep("fleet-lease", self._lease_loop)

    async def _connect(self) -> None:
        assert self._budget is not None
        assert self._connected is not None
        try:
            self._offset.update(await self._budget.probe())  # loads the script and learns Redis's clock
        except FleetUnavailableError as exc:
            self._enter_fallback(str(exc))
        except Exception as exc:  # noqa: BLE001 - the same: an unexpected failure still means "no Redis"
            self._enter_fallback(f"{type(exc).__name__}: {exc}")
        finally:
            self._connected.set()

    async def stop(self) -> None:
        """Stop the background work and close the client; idempotent, safe without :meth:`start`."""
        if self._stopped:
            return
        self._stopped = True
        for event in (self._connected, self._refilled):
            if event is not None:
                event.set()  # a waiter wakes, sees the limiter stopped, and paces locally
        await self._tasks.stop()
        if self._mode is _Mode.FALLBACK:
            self._fallback_total += self._clock() - self._fallback_since
        self._book.clear()
        if self._client is not None:
            await self._client.aclose()

    # --- the hot path

    async def acquire(self) -> None:
        """Wait until one more request may start now. Cancellation gives a held slot back to the next waiter.

        Waiters queue on a lock in arrival order; only a reservation round trip (bounded by the timeout) or the
        pacing itself makes a caller wait."""
        if self._budget is None and not self._stopped:
            await self.start()
        self._waiting += 1
        try:
            async with self._lock:
                await self._acquire_locked()
        finally:
            self._waiting -= 1

    async def _acquire_locked(self) -> None:
        while True:
            if self._stopped:  # a straggler during shutdown: no Redis any more, but still within its share
                await sleep_until(self._local_from, self._clock)
                await self._fallback.acquire()
                return
            slot = self._book.take(self._clock())
            if slot is not None:  # held slots stay valid whatever happens to Redis: the schedule counted them
                if await self._use(slot):
                    return
                continue
            if self._mode is _Mode.REDIS:
                await sleep_until(self._not_before, self._clock)
                await self._refill(1 if self._vague_replies else self._demand())
                continue
            if self._redis_back and self._clock() >= self._local_from:
                self._rejoin()
                continue
            # Alone on its share: only once the share cannot be in the schedule any more, one local interval after
            # the share's last use, so that this member never starts more than its share in any window.
            await sleep_until(self._local_from, self._clock)
            if self._redis_back or self.mode != _Mode.FALLBACK.value:  # the lease loop may have switched meanwhile
                continue
            await self._fallback.acquire()
            self._last_local = self._last_grant = self._clock()
            self.grants += 1
            return

    async def _use(self, slot: tuple[float, float]) -> bool:
        """Wait for a held slot's time and take it, unless the wake-up came past its deadline."""
        try:
            await sleep_until(slot[0], self._clock)
        except asyncio.CancelledError:
            self._book.give_back(slot)
            raise
        now = self._clock()
        if now > slot[1]:  # woke too late: starting now could crowd a later slot's window
            self._book.wasted += 1
            return False
        self._last_grant = now
        self.grants += 1
        return True

    def _demand(self) -> int:
        """How many slots to reserve: the waiters, or, while grants are taken as fast as they come (the scheduler
        asks one at a time), twice as many as last time up to the maximum; one again after a pause."""
        busy = self._clock() - self._last_grant <= 2 * self._interval
        self._streak = min(self._max_slots, self._streak * 2) if busy else 1
        return max(self._streak, self._waiting)

    async def _refill(self, wanted: int) -> None:
        """One reservation round trip under the supervisor: a cancelled waiter never cuts a Redis call in half."""
        done = self._refilled
        if done is None:
            done = self._refilled = asyncio.Event()
            count = max(1, min(self._max_slots, wanted - len(self._book)))
            self._tasks.spawn("fleet-reserve", lambda: self._reserve(count, done))
        await done.wait()

    async def _reserve(self, count: int, done: asyncio.Event) -> None:
        try:
            assert self._connected is not None
            await self._connected.wait()
            if self._mode is _Mode.REDIS:
                await self._call(count)
        finally:
            self._refilled = None
            done.set()

    async def _call(self, count: int) -> None:
        """One call that renews the lease (and reserves ``count`` slots, none for a heartbeat); a failure of any
        kind switches to the fallback."""
        assert self._budget is not None
        sent = self._clock()
        valid_until = self._offset.latest_redis(sent + self._timeout)
        # Whatever this call does happens on Redis's clock by valid_until: the lease it renews ends LEASE later,
        # and the slots handed out meanwhile lie at most LEAD ahead and start at most the tolerance late.
        after = LEASE + LEAD + self._tolerance
        share_over = self._offset.local(valid_until + round(after * 1e6)) if valid_until else sent + 1 + after
        self._local_from = max(self._local_from, share_over + self._fallback.interval)
        self._last_call = sent
        try:
            reservation = await self._budget.reserve(count, valid_until, self._lease_end)
        except FleetUnavailableError as exc:
            self._enter_fallback(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - whatever goes wrong with Redis must end in the fallback, not a crash
            self._enter_fallback(f"{type(exc).__name__}: {exc}")
            return
        self._offset.update(reservation)
        if reservation.lost:
            self._lease_end = 0  # the next schedule starts without this member, once its share here is over
            self._enter_fallback("Redis lost the fleet's schedule (restarted, flushed or failed over)")
            return
        self._lease_end = max(self._lease_end, reservation.now + round(LEASE * 1e6))
        if count == 0:
            return
        if reservation.count == 0:  # the schedule already reaches LEAD ahead: ask again once it has room
            self._not_before = self._offset.local(reservation.first - round(LEAD * 1e6) + reservation.interval)
            return
        if self._book.add(reservation, self._offset, self._tolerance):
            self._vague_replies = 0
            return
        # The round trips so far were too slow to place slots precisely (a cold connection, a busy loop): try again
        # for one slot; only Redis that stays that slow counts as unusable.
        self._vague_replies += 1
        if self._vague_replies >= VAGUE_REPLIES_LIMIT:
            uncertainty = self._offset.uncertainty * 1000
            self._enter_fallback(f"Redis's clock is known only within {uncertainty:.0f} ms, too loosely to pace by")

    # --- fallback and recovery

    def _enter_fallback(self, reason: str) -> None:
        if self._mode is _Mode.FALLBACK or self._stopped:
            return
        self._mode = _Mode.FALLBACK
        self._redis_back = False
        self._fallback_since = self._clock()
        self.outages += 1
        _log.warning(
            "ratelimit_fallback",
            redis=self._safe_url,
            key=self._key,
            reason=reason,
            fallback_requests_per_second=round(self.fallback_requests_per_second, 3),
        )

    def _rejoin(self) -> None:
        """Back to the schedule (its old share is over): the next call, one local interval on, counts it in."""
        self._mode = _Mode.REDIS
        self._redis_back = False
        self._vague_replies = 0
        self._not_before = self._last_local + self._fallback.interval
        outage = self._clock() - self._fallback_since
        self._fallback_total += outage
        _log.info("ratelimit_recovered", redis=self._safe_url, key=self._key, fallback_seconds=round(outage, 3))

    async def _lease_loop(self) -> None:
        """Keep this member's lease while it is quiet on Redis; probe Redis while in fallback."""
        assert self._budget is not None
        assert self._connected is not None
        await self._connected.wait()
        while True:
            if self._mode is _Mode.REDIS:
                # After rejoining, the call that counts it in again waits one local interval (_not_before).
                await sleep_until(max(self._last_call + HEARTBEAT, self._not_before), self._clock)
                if self._mode is _Mode.REDIS and self._clock() - self._last_call >= HEARTBEAT:
                    await self._call(0)
                continue
            await asyncio.sleep(self._probe_interval)
            try:
                self._offset.update(await self._budget.probe())  # reloads the script too: a restarted Redis has none
            except Exception:  # noqa: BLE001, S112 - still unreachable, whatever the reason: try again later
                continue
            self._redis_back = True
            if not self._lock.locked() and self._clock() >= self._local_from:
                self._rejoin()  # nobody is pacing on the share right now: switch at once
