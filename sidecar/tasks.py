"""Owned background tasks: the one place in ``sidecar/`` that creates asyncio tasks.

* :class:`Supervisor` runs one stage's background work in a TaskGroup, so that no task dies silently: long-lived
  loops (:meth:`Supervisor.keep`) are restarted after a backoff and reported until they say they are fine again;
  units of work (:meth:`Supervisor.spawn`) have an exception that escapes them logged with its traceback.
* :class:`Supervision` gathers every supervisor of a process, so that health and metrics read one place: a unit that
  cannot go on (``spool.writer``, ``delivery.send``, ...) turns health NOT_SERVING, named, until it recovers.
* :func:`cancel_and_wait` is how a stage cancels what it started and waits for it to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from sidecar.backoff import Backoff

log = structlog.get_logger("sidecar.tasks")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel every task (None is skipped), then wait for each to end; their cancellations are not re-raised."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Supervision:
    """Every :class:`Supervisor` of one process: what cannot go on (for health) and which units run (for metrics).

    Units are named ``<supervisor>.<unit>``. ``on_change`` is called whenever any supervisor's problems change.
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._supervisors: list[Supervisor] = []
        self.on_change = on_change

    def add(self, supervisor: Supervisor) -> None:
        """Gather ``supervisor`` (its constructor does this when given this supervision)."""
        self._supervisors.append(supervisor)

    @property
    def problems(self) -> dict[str, str]:
        """Why each unit that cannot go on cannot, by ``<supervisor>.<unit>``; empty when all is well."""
        return {
            f"{supervisor.name}.{unit}": why
            for supervisor in self._supervisors
            for unit, why in sorted(supervisor.problems.items())
        }

    def units(self) -> dict[str, bool]:
        """Every unit seen so far, by ``<supervisor>.<unit>``: True while it runs without a problem."""
        return {
            f"{supervisor.name}.{unit}": up
            for supervisor in self._supervisors
            for unit, up in sorted(supervisor.units().items())
        }

    def changed(self) -> None:
        """A supervisor's problems changed."""
        if self.on_change is not None:
            self.on_change()


class Supervisor:
    """Runs a stage's background work in one TaskGroup, so that no task dies silently.

    * :meth:`keep` runs a long-lived loop; if it raises, the exception is logged once with its traceback (repeats of
      the same streak only as a warning), the loop is restarted after a backoff, and the unit is reported as a problem
      until the work says it is fine again (:meth:`report` with None).
    * :meth:`spawn` runs one unit of work (a request); it must settle and report its own failures (the dispatcher
      retries the unit and reports the spool or the sender), but an exception that escapes anyway (a bug) is logged
      with its traceback, never lost in a task.

    :attr:`problems` maps a unit name to why it cannot go on; ``on_change`` (and the ``supervision`` it belongs to, if
    any) is told whenever that map changes.
    """

    def __init__(
        self,
        name: str,
        on_change: Callable[[], None] | None = None,
        restart_base: float = 0.1,
        restart_cap: float = 5.0,
        supervision: Supervision | None = None,
    ) -> None:
        self.name = name
        self._on_change = on_change
        self._restart = Backoff(restart_base, restart_cap)
        self._supervision = supervision
        if supervision is not None:
            supervision.add(self)
        self._group: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self._running: dict[str, int] = {}  # kept loops running, by unit
        self.problems: dict[str, str] = {}

    async def start(self) -> None:
        """Open the task group; returns once tasks can be added. Idempotent."""
        if self._runner is not None:
            return
        self._stopping = False
        self._runner = asyncio.create_task(self._run(), name=f"{self.name}-supervisor")
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

    def units(self) -> dict[str, bool]:
        """Kept loops and reported units: True while running (a loop) without a problem."""
        seen = dict.fromkeys(self.problems, False)
        for unit, count in self._running.items():
            seen[unit] = count > 0 and unit not in self.problems
        return seen

    def report(self, unit: str, problem: str | None) -> None:
        """Say that ``unit`` cannot go on because of ``problem``, or (None) that it goes on again."""
        if problem is None:
            if self.problems.pop(unit, None) is not None:
                log.info("task_recovered", supervisor=self.name, unit=unit)
                self._changed()
        elif self.problems.get(unit) != problem:
            self.problems[unit] = problem
            self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
        if self._supervision is not None:
            self._supervision.changed()

    def keep(self, unit: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` until it returns, restarting it after a backoff whenever it raises."""
        group = self._open_group()
        if group is not None:
            self._running.setdefault(unit, 0)
            group.create_task(self._keep(unit, work), name=f"{self.name}-{unit}")

    def spawn(self, unit: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run one unit of work; an exception escaping it is logged with its traceback.

        ``work`` is called inside the task, so a task cancelled (a stop) before it ran leaves no coroutine unawaited."""
        group = self._open_group()
        if group is not None:
            group.create_task(self._once(unit, work), name=f"{self.name}-{unit}")

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
            log.exception("task_failed", supervisor=self.name, task=unit, error=type(exc).__name__)

    async def _keep(self, unit: str, work: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        self._running[unit] = self._running.get(unit, 0) + 1
        try:
            while True:
                try:
                    await work()
                except Exception as exc:
                    failures += 1
                    if failures == 1:
                        log.exception("task_failed", supervisor=self.name, task=unit, error=type(exc).__name__)
                    else:
                        log.warning(
                            "task_failed_again",
                            supervisor=self.name,
                            task=unit,
                            error=repr(exc)[:300],
                            failures=failures,
                        )
                    self.report(unit, type(exc).__name__)
                    await asyncio.sleep(self._restart.delay(failures - 1))
                else:
                    return
        finally:
            self._running[unit] -= 1
