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

LEASE: Final = 0.6
"""Seconds a member counts in the schedule's rate after its last call reached Redis (each call renews it)."""

HEARTBEAT: Final = 0.3
"""A member with nothing to send renews its lease this often, so that an idle member's share stays in the schedule."""

LEAD: Final = 0.5
"""No slot is handed out more than this far ahead of Redis's *now*: how long a rate outlives a change of members."""

SAFETY: Final = 0.002
"""Seconds kept off the grace for drift while slots are held and for float rounding."""

MIN_GRACE: Final = 0.02
"""Slots whose lateness allowance (tolerance minus the clock's uncertainty) would be below this are not used."""

DEFAULT_MAX_RESERVATION: Final = 0.25
"""At most this many seconds' worth of slots are reserved per round trip (and at least one slot)."""

DEFAULT_MAX_SLOTS: Final = 16
"""At most this many slots are reserved per round trip."""

DEFAULT_PROBE_INTERVAL: Final = 0.5
"""Seconds between two probes of an unreachable Redis."""

VAGUE_REPLIES_LIMIT: Final = 3
"""Replies in a row too slow to place slots by, after which Redis counts as too slow and the fallback takes over."""


_US: Final = 1_000_000

# KEYS[1]: the schedule's end (µs).  KEYS[2]: the members, a sorted set of member id -> lease end (µs).
# ARGV: member id, interval at the whole fleet's rate (µs), fleet size, slots wanted (-1: only read the clock),
#       clock-step reset (µs), lease (µs), lead (µs), valid until (µs on Redis's clock; 0: always), the member's
#       lease end as its last reply told it (µs; 0: none).
# Returns {now, first slot, count, interval, status}: status 0 done, 1 the schedule was lost (nothing done),
# 2 the call arrived after its validity (nothing done). The slots are first + i * interval for i < count.
# The interval gives the members whose lease is running (at most the fleet size) their shares of the rate, so a
# member that went silent keeps its share out of the schedule until its lease has ended and the slots handed out
# before then (at most `lead` ahead) have passed. Numbers are written with %.0f: Lua 5.1's default formatting would
# round a 16-digit time to 14 digits.
_SCRIPT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(x) return string.format('%.0f', x) end
local wanted = tonumber(ARGV[4])
local valid = tonumber(ARGV[8])
if wanted < 0 then return {fmt(now), '0', '0', '0', '0'} end
if valid > 0 and now > valid then return {fmt(now), '0', '0', '0', '2'} end
local lead = tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now - lead))
local known = tonumber(ARGV[9])
if known > 0 and known + lead > now then
  local mine = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if not mine or tonumber(mine) < known then return {fmt(now), '0', '0', '0', '1'} end
end
local lease = tonumber(ARGV[6])
redis.call('ZADD', KEYS[2], fmt(now + lease), ARGV[1])
redis.call('PEXPIRE', KEYS[2], math.floor((lease + lead) / 1000) + 1000)
local size = tonumber(ARGV[3])
local live = redis.call('ZCOUNT', KEYS[2], '(' .. fmt(now), '+inf')
if live > size then live = size end
local interval = math.ceil(tonumber(ARGV[2]) * size / live)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now or tat > now + tonumber(ARGV[5]) then tat = now end
local count = 0
if wanted > 0 and tat <= now + lead then
  count = math.min(wanted, math.floor((now + lead - tat) / interval) + 1)
  local after = tat + interval * count
  redis.call('SET', KEYS[1], fmt(after), 'PX', math.floor((after - now) / 1000) + 1000)
end
return {fmt(now), fmt(tat), tostring(count), fmt(interval), '0'}
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


def local_rate(requests_per_second: float, fleet_size: int, headroom: float = HEADROOM) -> float:
    """A member's own share, the pace it keeps without the schedule: ``headroom * cap / fleet size``, rounded down to
    a whole number of requests per second when that is at least one.

    Paced at a whole rate ``r``, a member starts at most ``r`` requests in any one-second window, so the fleet's
    members together never pass ``headroom * cap`` however their paces line up (at a cap of 10 and 7 members, 9/7 a
    second each would let two starts of every member fall in one window: 14).
    """
    share = headroom * requests_per_second / fleet_size
    return float(math.floor(share + 1e-9)) if share >= 1 else share


class FleetUnavailableError(Exception):
    """Redis did not answer in time, refused, or failed; the message names why (never the URL's credentials)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """``count`` slots on Redis's clock, and the local round trip that fetched them.

    ``sent`` and ``received`` are local monotonic seconds; ``now``, ``first`` and ``interval`` are Redis
    microseconds. ``lost`` says the member's lease was missing from Redis though it had not ended: Redis lost the
    schedule (a restart, a flush, a failover) and nothing was reserved.
    """

    now: int
    first: int
    count: int
    interval: int
    sent: float
    received: float
    lost: bool = False

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
    loop) does not blur the mapping. Replies that contradict the interval (Redis restarted on another host, its
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

    def latest_redis(self, local: float) -> int:
        """The latest Redis time (µs) that the local time ``local`` may correspond to (0 while nothing is known)."""
        return 0 if math.isinf(self._high) else math.ceil((local + self._high) * _US)


class FleetBudget:
    """The shared schedule under one Redis key: reserves slots through the atomic script; no fallback here.

    ``interval`` is the spacing at the whole fleet's rate; the script widens it to the shares of the members whose
    lease is running (``member`` names this one). :meth:`reserve` raises :class:`FleetUnavailableError` for anything
    that went wrong, including the timeout. The script is reloaded when Redis answers ``NOSCRIPT`` (it restarted or
    its scripts were flushed). ``round_trips`` counts every command sent.
    """

    __slots__ = (
        "_client", "_clock", "_connect_timeout", "_fleet_size", "_interval_us", "_key", "_member", "_sha", "_timeout",
        "round_trips",
    )  # fmt: skip

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        interval: float,
        *,
        member: str = "member",
        fleet_size: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._key = key
        self._member = member
        self._fleet_size = fleet_size
        self._interval_us = max(1, round(interval * _US))
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._clock = clock
        self._sha: str | None = None
        self.round_trips = 0

    @property
    def interval(self) -> int:
        """Microseconds between two slots at the whole fleet's rate."""
        return self._interval_us

    async def reserve(self, count: int, valid_until: int = 0, lease_end: int = 0) -> Reservation:
        """Renew this member's lease and reserve up to ``count`` consecutive slots at the end of the schedule (none
        for ``count`` 0: a heartbeat; fewer when the schedule already reaches :data:`LEAD` ahead).

        ``valid_until`` (Redis µs) makes a call that reaches Redis later a no-op; ``lease_end`` is this member's lease
        as its last reply told it, which Redis must still hold unless it lost the schedule.
        """
        return await self._call(max(0, count), valid_until, lease_end, self._timeout)

    async def probe(self) -> Reservation:
        """Read Redis's clock through the script (loading it if needed) without joining the schedule."""
        return await self._call(-1, 0, 0, self._connect_timeout)

    async def _call(self, count: int, valid_until: int, lease_end: int, limit: float) -> Reservation:
        args = (
            self._member, str(self._interval_us), str(self._fleet_size), str(count),
            str(round(CLOCK_STEP_RESET * _US)), str(round(LEASE * _US)), str(round(LEAD * _US)),
            str(valid_until), str(lease_end),
        )  # fmt: skip
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        try:
            async with asyncio.timeout(limit):
                reply, sent = await self._run(args)
        except NoScriptError as exc:  # the reload itself raced a second flush: rare, and the next call retries
            _raise_lost_cancellation(task, cancels)
            raise FleetUnavailableError("the rate-limit script kept disappearing from Redis") from exc
        except (RedisError, OSError, TimeoutError) as exc:
            _raise_lost_cancellation(task, cancels)
            raise FleetUnavailableError(_describe(exc)) from exc
        _raise_lost_cancellation(task, cancels)
        received = self._clock()
        now, first, granted, interval, status = _integers(reply)
        if status == _TOO_LATE:
            raise FleetUnavailableError("the call reached Redis after its time limit")
        return Reservation(now, first, granted, interval, sent, received, lost=status == 1)

    async def connect(self) -> None:
        """Open a connection and load the script, within the (longer) connect timeout: a warm-up off the hot path."""
        try:
            async with asyncio.timeout(self._connect_timeout):
                self.round_trips += 1
                self._sha = await self._client.script_load(_SCRIPT)
        except (RedisError, OSError, TimeoutError) as exc:
            raise FleetUnavailableError(_describe(exc)) from exc

    async def _run(self, args: tuple[str, ...]) -> tuple[Any, float]:
        """The script's reply and the local time the command that produced it was sent (after any reload)."""
        keys = (self._key, self._key + ":members")
        if self._sha is not None:
            try:
                self.round_trips += 1
                sent = self._clock()
                return await cast("Awaitable[Any]", self._client.evalsha(self._sha, 2, *keys, *args)), sent
            except NoScriptError:
                self._sha = None
        self.round_trips += 1
        self._sha = await self._client.script_load(_SCRIPT)
        self.round_trips += 1
        sent = self._clock()
        return await cast("Awaitable[Any]", self._client.evalsha(self._sha, 2, *keys, *args)), sent


_REPLY_LENGTH: Final = 5
_TOO_LATE: Final = 2


def _integers(reply: Any) -> tuple[int, int, int, int, int]:
    """The script's ``{now, first, count, interval, status}``; anything else (not Redis, not our script) is Redis
    being unusable."""
    if isinstance(reply, list) and len(reply) == _REPLY_LENGTH:
        with contextlib.suppress(TypeError, ValueError):
            now, first, count, interval, status = (int(value) for value in reply)
            return now, first, count, interval, status
    raise FleetUnavailableError(f"unexpected reply from the rate-limit script: {reply!r:.80}")


def _raise_lost_cancellation(task: asyncio.Task[Any] | None, cancels: int) -> None:
    """Raise the CancelledError of a cancellation requested during a Redis call that the call did not raise.

    redis-py writes through ``asyncio.wait_for``, which on Python 3.11 returns normally when the cancellation lands
    as the write completes; the call then goes on to its reply, and a loop that ends only by cancellation (the lease
    loop) would never end. ``asyncio.timeout`` withdraws its own cancellation, so any request left is someone else's.
    """
    if task is not None and task.cancelling() > cancels:
        raise asyncio.CancelledError


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

    def add(self, reservation: Reservation, offset: ClockOffset, tolerance: float) -> bool:
        """Record a reservation's slots; False (none recorded) when the clock is too uncertain to place them.

        Each slot may start from its mapped time until ``tolerance`` minus the offset's uncertainty after it.
        """
        grace = tolerance - offset.uncertainty - SAFETY
        if grace < MIN_GRACE:
            self.wasted += reservation.count
            return False
        for slot in reservation.slots:
            start = offset.local(slot)
            self._slots.append((start, start + grace))
        return True

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


async def sleep_until(deadline: float, clock: Callable[[], float]) -> None:
    """Sleep until ``clock()`` reaches ``deadline`` (the event loop's timers run on the same monotonic clock)."""
    delay = deadline - clock()
    if delay > 0:
        await asyncio.sleep(delay)
