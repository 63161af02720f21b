"""Owned background tasks: the one way a stage cancels what it started and waits for it to finish, and the
supervisor that runs delivery's tasks so that none dies silently."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

log = structlog.get_logger("sidecar.delivery")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel every task (None is skipped), then wait for each to end; their cancellations are not re-raised."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Supervisor:
    """Runs a stage's background work in one TaskGroup, so that no task dies silently.

    * :meth:`keep` runs a long-lived loop; if it raises, the exception is logged once with its traceback (repeats of
      the same streak only as a warning), the loop is restarted after a backoff, and the unit is reported as a problem
      until the work says it is fine again (:meth:`report` with None).
    * :meth:`spawn` runs one unit of work (a request); it must settle and report its own failures (the driver retries
      the unit and reports the spool or the sender), but an exception that escapes anyway (a bug) is logged with its
      traceback, never lost in a task.

    :attr:`problems` maps a unit name to why it cannot go on; ``on_change`` is called whenever that map changes (the
    composition root turns health NOT_SERVING while it is not empty).
    """

    def __init__(
        self,
        name: str,
        on_change: Callable[[], None] | None = None,
        restart_base: float = 0.1,
        restart_cap: float = 5.0,
    ) -> None:
        self._name = name
        self._on_change = on_change
        self._restart_base = restart_base
        self._restart_cap = restart_cap
        self._group: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self.problems: dict[str, str] = {}

    async def start(self) -> None:
        """Open the task group; returns once tasks can be added. Idempotent."""
        if self._runner is not None:
            return
        self._stopping = False
        self._runner = asyncio.create_task(self._run(), name=f"{self._name}-supervisor")
        await self._ready.wait()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            self._ready.set()
            await asyncio.Event().wait()  # until cancelled by stop(): the group then cancels and awaits its tasks

    async def stop(self) -> None:
        """Cancel every task and wait for them; idempotent and safe without start. Work added while this runs (a
        loop woken before its cancellation arrives) is not started."""
        runner, self._runner = self._runner, None
        self._stopping = runner is not None or self._stopping
        self._group = None
        self._ready.clear()
        await cancel_and_wait([runner])

    def report(self, unit: str, problem: str | None) -> None:
        """Say that ``unit`` cannot go on because of ``problem``, or (None) that it goes on again."""
        if problem is None:
            if self.problems.pop(unit, None) is not None:
                log.info("delivery_unit_recovered", unit=unit)
                self._changed()
        elif self.problems.get(unit) != problem:
            self.problems[unit] = problem
            self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def keep(self, unit: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` until it returns, restarting it after a backoff whenever it raises."""
        group = self._open_group()
        if group is not None:
            group.create_task(self._keep(unit, work), name=f"{self._name}-{unit}")

    def spawn(self, unit: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run one unit of work; an exception escaping it is logged with its traceback.

        ``work`` is called inside the task, so a task cancelled (a stop) before it ran leaves no coroutine unawaited."""
        group = self._open_group()
        if group is not None:
            group.create_task(self._once(unit, work), name=f"{self._name}-{unit}")

    def _open_group(self) -> asyncio.TaskGroup | None:
        """The group to add work to; None once stop() has begun (it would cancel the work before it ran, and what
        the work would have sent stays spooled)."""
        if self._group is None and not self._stopping:
            raise RuntimeError("supervisor used before start()")
        return self._group

    async def _once(self, unit: str, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except Exception as exc:
            log.exception("delivery_task_failed", task=unit, error=type(exc).__name__)

    async def _keep(self, unit: str, work: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        while True:
            try:
                await work()
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.exception("delivery_task_failed", task=unit, error=type(exc).__name__)
                else:
                    log.warning("delivery_task_failed_again", task=unit, error=repr(exc)[:300], failures=failures)
                self.report(unit, type(exc).__name__)
                await asyncio.sleep(min(self._restart_cap, self._restart_base * 2 ** min(failures - 1, 30)))
            else:
                return
