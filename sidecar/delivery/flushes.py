"""The flushes waiting in the dispatcher: each waits, on an event, until every event counted into the scheduler
before it (seq up to its target) has left the spool, or waits on a parked key. Kept up to date in O(1) per settled
request: a flush holds each key's count of its events still waiting, and the set of keys that hold it up."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sidecar.delivery.scheduler import Scheduler
from sidecar.model import ShardKey, SpooledEvent


class Flush:
    """One waiting Flush: what it still waits for, per key, and the keys that hold it up (those not parked)."""

    __slots__ = ("_done", "holding", "remaining", "target")

    def __init__(self, target: int, remaining: dict[ShardKey, int], holding: set[ShardKey]) -> None:
        self.target = target
        self.remaining = remaining
        self.holding = holding
        self._done = asyncio.Event()

    async def wait(self) -> None:
        """Until nothing holds this flush up."""
        await self._done.wait()

    def request_done(self, key: ShardKey, left: Sequence[SpooledEvent], parked: bool) -> None:
        """A request of ``key`` settled, ``left`` having left the spool; ``parked``: whether the key is parked now."""
        if key not in self.remaining:
            return
        waiting = self.remaining[key] - sum(1 for event in left if event.seq <= self.target)
        if waiting <= 0:
            del self.remaining[key]
            self.holding.discard(key)
        else:
            self.remaining[key] = waiting
            if parked:
                self.holding.discard(key)
            else:
                self.holding.add(key)
        if not self.holding:
            self._done.set()


class Flushes:
    """Every waiting flush of one dispatcher; ``bool()`` is whether any waits (partial batches then go at once)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._waiting: list[Flush] = []
        self._reported = (0, 0)
        """(delivered, dead-lettered) totals when the last flush answered: each flush reports what settled since."""

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def begin(self, target: int) -> Flush | None:
        """A flush of every event up to seq ``target``; None when nothing holds it up (everything waiting is parked)."""
        remaining = dict(self._scheduler.waiting())
        holding = {key for key in remaining if not self._scheduler.is_parked(key)}
        if not holding:
            return None
        waiter = Flush(target, remaining, holding)
        self._waiting.append(waiter)
        return waiter

    def since_last(self, delivered: int, dead_lettered: int) -> tuple[int, int]:
        """The delivered and dead-lettered events since the previous flush answered, from the running totals."""
        before, self._reported = self._reported, (delivered, dead_lettered)
        return delivered - before[0], dead_lettered - before[1]

    def end(self, waiter: Flush) -> None:
        """The flush returned (or gave up)."""
        self._waiting.remove(waiter)

    def request_done(self, key: ShardKey, left: Sequence[SpooledEvent]) -> None:
        """A request of ``key`` settled; ``left`` left the spool."""
        if self._waiting:
            parked = self._scheduler.is_parked(key)
            for waiter in self._waiting:
                waiter.request_done(key, left, parked)
