"""The fleet's schedule in Redis and its arithmetic: the Lua script, reservations, clock offsets, held slots.

Pure parts (:func:`tolerance`, :func:`bound`, :class:`Reservation`, :class:`ClockOffset`, :class:`SlotBook`) are
tested without Redis; :class:`FleetBudget` is the only I/O. :mod:`sidecar.send.fleet` builds the limiter on top and
explains the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import redis.asyncio as redis
from redis.exceptions import NoScriptError, RedisError

from sidecar.send.ratelimit import HEADROOM

CONTRACT_EXCESS: Final = 0.2
"""The fleet may exceed the cap by at most this fraction of it in any one-second window."""

DEFAULT_TOLERANCE: Final = 0.1
"""Seconds a request may start after its slot, round trip included: ``(1 + D) * headroom <= 1`` keeps grants <= cap."""

CLOCK_DRIFT: Final = 0.001
"""Assumed worst rate difference between the local monotonic clock and Redis's clock (NTP slews at most 500 ppm)."""

CLOCK_STEP_RESET: Final = 60.0
"""A schedule further than this ahead of Redis's clock means the clock stepped back: restart it at now."""

DEFAULT_TIMEOUT: Final = 0.2
"""Time limit of one Redis call; past it, delivery goes on with the local fallback."""

DEFAULT_CONNECT_TIMEOUT: Final = 1.0
"""Time limit of connecting (TCP, TLS handshake, AUTH, script load): at start, in the background, and when probing."""

SAFETY: Final = 0.002
"""Seconds kept off the grace for drift while slots are held and for float rounding."""

MIN_GRACE: Final = 0.02
"""Slots whose lateness allowance (tolerance minus the clock's uncertainty) would be below this are not used."""

_US: Final = 1_000_000

# KEYS[1]: the schedule's key.  ARGV: interval (µs), slots wanted, clock-step reset (µs).
# Returns {now, first slot}, both in µs on Redis's clock; the slots are first + i * interval for i < wanted.
# Numbers are written with %.0f: Lua 5.1's default formatting would round a 16-digit time to 14 digits.
_SCRIPT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now or tat > now + tonumber(ARGV[3]) then
  tat = now
end
local after = tat + interval * wanted
local ttl_ms = math.floor((after - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', ttl_ms)
return {string.format('%.0f', now), string.format('%.0f', tat)}
"""


def tolerance(requests_per_second: float, headroom: float = HEADROOM, preferred: float = DEFAULT_TOLERANCE) -> float:
    """``D`` of :mod:`sidecar.send.fleet`: how late after its slot a request may start, clock uncertainty included.

    ``preferred``, unless the contract's bound needs less: at most the largest ``D`` with
    ``(1 + D) * headroom * cap <= floor((1 + CONTRACT_EXCESS) * cap)``, which for a whole-number cap is at least
    ``1 / headroom - 1`` (0.11 s at 90%). A fractional cap can leave less; the floor is 20 ms.
    """
    allowed = max(1, math.floor((1 + CONTRACT_EXCESS) * requests_per_second + 1e-9))
    largest = allowed / (headroom * requests_per_second) - 1
    return max(MIN_GRACE, min(preferred, largest - 1e-6))


def bound(requests_per_second: float, headroom: float = HEADROOM) -> int:
    """The most requests the fleet can start in any one-second window: ``ceil((1 + D) * headroom * cap)``."""
    return math.ceil((1 + tolerance(requests_per_second, headroom)) * headroom * requests_per_second - 1e-9)


class FleetUnavailableError(Exception):
    """Redis did not answer in time, refused, or failed; the message names why (never the URL's credentials)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """``count`` slots on Redis's clock, and the local round trip that fetched them.

    ``sent`` and ``received`` are local monotonic seconds; ``now`` and ``first`` are Redis microseconds.
    """

    now: int
    first: int
    count: int
    interval: int
    sent: float
    received: float

    @property
    def rtt(self) -> float:
        """Seconds the round trip took."""
        return self.received - self.sent

    @property
    def slots(self) -> tuple[int, ...]:
        """The reserved start times, in microseconds on Redis's clock."""
        return tuple(self.first + i * self.interval for i in range(self.count))

    @property
    def offset_bounds(self) -> tuple[float, float]:
        """(lowest, highest) possible value of Redis's clock minus the local clock, in seconds.

        ``TIME`` was read somewhere between ``sent`` and ``received``.
        """
        redis_now = self.now / _US
        return redis_now - self.received, redis_now - self.sent


class ClockOffset:
    """What is known of Redis's clock minus this process's monotonic clock: an interval, narrowed by each reply.

    Each round trip bounds the offset to ``[now - received, now - sent]``; the intersection with what was known
    before is kept, widened by :data:`CLOCK_DRIFT` per elapsed second (the two clocks may run at slightly different
    rates). After a few replies the interval is as narrow as the fastest round trip, so one slow reply (a busy event
    loop) no longer blurs the mapping. Replies that contradict the interval (Redis restarted on another host, its
    clock stepped) start it over. Mapping with the *lowest* offset never places a slot early.
    """

    __slots__ = ("_at", "_high", "_low")

    def __init__(self) -> None:
        self._low = -math.inf
        self._high = math.inf
        self._at = 0.0

    @property
    def uncertainty(self) -> float:
        """Width of the interval in seconds: how late a slot may be started at most, from the mapping alone."""
        return self._high - self._low

    def update(self, reservation: Reservation) -> None:
        """Narrow the interval with one more round trip."""
        low, high = reservation.offset_bounds
        widen = CLOCK_DRIFT * max(0.0, reservation.received - self._at)
        low, high = max(low, self._low - widen), min(high, self._high + widen)
        if low > high:  # contradiction: the clock moved; trust only the new reply
            low, high = reservation.offset_bounds
        self._low, self._high, self._at = low, high, reservation.received

    def local(self, redis_us: int) -> float:
        """The local monotonic time by which Redis's clock has surely reached ``redis_us``."""
        return redis_us / _US - self._low


class FleetBudget:
    """The shared schedule under one Redis key: reserves slots through the atomic script; no fallback here.

    :meth:`reserve` raises :class:`FleetUnavailableError` for anything that went wrong, including the timeout. The
    script is reloaded when Redis answers ``NOSCRIPT`` (it restarted or its scripts were flushed). ``round_trips``
    counts every command sent.
    """

    __slots__ = ("_client", "_clock", "_connect_timeout", "_interval_us", "_key", "_sha", "_timeout", "round_trips")

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        interval: float,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._key = key
        self._interval_us = max(1, round(interval * _US))
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._clock = clock
        self._sha: str | None = None
        self.round_trips = 0

    @property
    def interval(self) -> int:
        """Microseconds between two slots."""
        return self._interval_us

    async def reserve(self, count: int) -> Reservation:
        """Reserve ``count`` consecutive slots (at least one) at the end of the schedule."""
        count = max(1, count)
        try:
            async with asyncio.timeout(self._timeout):
                reply, sent = await self._run(count)
        except NoScriptError as exc:  # the reload itself raced a second flush: rare, and the next call retries
            raise FleetUnavailableError("the rate-limit script kept disappearing from Redis") from exc
        except (RedisError, OSError, TimeoutError) as exc:
            raise FleetUnavailableError(_describe(exc)) from exc
        received = self._clock()
        now, first = _two_integers(reply)
        return Reservation(now, first, count, self._interval_us, sent, received)

    async def connect(self) -> None:
        """Open a connection and load the script, within the (longer) connect timeout: a warm-up off the hot path."""
        try:
            async with asyncio.timeout(self._connect_timeout):
                self.round_trips += 1
                self._sha = await self._client.script_load(_SCRIPT)
        except (RedisError, OSError, TimeoutError) as exc:
            raise FleetUnavailableError(_describe(exc)) from exc

    async def _run(self, count: int) -> tuple[Any, float]:
        """The script's reply and the local time the command that produced it was sent (after any reload)."""
        args = (str(self._interval_us), str(count), str(round(CLOCK_STEP_RESET * _US)))
        if self._sha is not None:
            try:
                self.round_trips += 1
                sent = self._clock()
                return await cast("Awaitable[Any]", self._client.evalsha(self._sha, 1, self._key, *args)), sent
            except NoScriptError:
                self._sha = None
        self.round_trips += 1
        self._sha = await self._client.script_load(_SCRIPT)
        self.round_trips += 1
        sent = self._clock()
        return await cast("Awaitable[Any]", self._client.evalsha(self._sha, 1, self._key, *args)), sent


def _two_integers(reply: Any) -> tuple[int, int]:
    """The script's ``{now, first}``; anything else (not Redis, not our script) is Redis being unusable."""
    if isinstance(reply, list) and len(reply) == 2:
        with contextlib.suppress(TypeError, ValueError):
            return int(reply[0]), int(reply[1])
    raise FleetUnavailableError(f"unexpected reply from the rate-limit script: {reply!r:.80}")


def _describe(exc: BaseException) -> str:
    """A short reason for a log line: the exception's class and message (redis-py's never hold the password)."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return "TimeoutError: no answer within the Redis timeout"
    return f"{type(exc).__name__}: {exc}"


class SlotBook:
    """Slots this sidecar holds, in order, as (local start, local deadline): pure bookkeeping, no I/O."""

    __slots__ = ("_slots", "wasted")

    def __init__(self) -> None:
        self._slots: deque[tuple[float, float]] = deque()
        self.wasted = 0

    def __len__(self) -> int:
        return len(self._slots)

    def add(self, reservation: Reservation, offset: ClockOffset, tolerance: float) -> int:
        """Record a reservation's slots; return how many are usable (none when the clock is too uncertain).

        Each slot may start from its mapped time until ``tolerance`` minus the offset's uncertainty after it.
        """
        grace = tolerance - offset.uncertainty - SAFETY
        if grace < MIN_GRACE:
            self.wasted += reservation.count
            return 0
        for slot in reservation.slots:
            start = offset.local(slot)
            self._slots.append((start, start + grace))
        return reservation.count

    def take(self, now: float) -> tuple[float, float] | None:
        """The earliest slot not yet past its deadline, dropping (and counting) the ones that are."""
        while self._slots:
            slot = self._slots.popleft()
            if now <= slot[1]:
                return slot
            self.wasted += 1
        return None

    def give_back(self, slot: tuple[float, float]) -> None:
        """Return an untaken slot to the front (its waiter was cancelled); the next waiter may use it."""
        self._slots.appendleft(slot)

    def clear(self) -> None:
        """Forget every slot (counted as wasted)."""
        self.wasted += len(self._slots)
        self._slots.clear()
