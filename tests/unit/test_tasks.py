"""The supervisor: a failing loop is logged once with its traceback, restarted and reported until it says it is fine."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from sidecar.tasks import Supervision, Supervisor


async def test_a_failing_loop_is_restarted_logged_once_and_reported_until_fine() -> None:
    """Three failures: one error line with a traceback, two warnings, a problem while failing, cleared after."""
    changes: list[dict[str, str]] = []
    supervisor = Supervisor("test", on_change=lambda: changes.append(dict(supervisor.problems)), restart_base=0.001)
    runs = 0
    done = asyncio.Event()

    async def work() -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise RuntimeError(f"boom {runs}")
        supervisor.report("loop", None)
        done.set()

    await supervisor.start()
    try:
        with capture_logs() as logs:
            supervisor.keep("loop", work)
            async with asyncio.timeout(5):
                await done.wait()
    finally:
        await supervisor.stop()
    failed = [e for e in logs if e["event"] == "task_failed"]
    again = [e for e in logs if e["event"] == "task_failed_again"]
    assert len(failed) == 1 and failed[0]["exc_info"] and len(again) == 2
    assert changes == [{"loop": "RuntimeError"}, {}]
    assert supervisor.problems == {}


async def test_an_exception_escaping_one_unit_is_logged_and_reported_not_lost() -> None:
    """spawn(): the unit's exception is logged with its traceback; other units go on."""
    supervisor = Supervisor("test")
    finished = asyncio.Event()

    async def bad() -> None:
        raise ValueError("bug")

    async def good() -> None:
        finished.set()

    await supervisor.start()
    try:
        with capture_logs() as logs:
            supervisor.spawn("bad", bad)
            supervisor.spawn("good", good)
            async with asyncio.timeout(5):
                await finished.wait()
                while not any(e["event"] == "task_failed" for e in logs):
                    await asyncio.sleep(0)
    finally:
        await supervisor.stop()
    failed = [e for e in logs if e["event"] == "task_failed"]
    assert [e["task"] for e in failed] == ["bad"] and failed[0]["exc_info"]


async def test_stop_is_idempotent_and_safe_without_start() -> None:
    """Lifecycle: stop without start, and twice after start, is fine; running loops are cancelled."""
    await Supervisor("never").stop()
    supervisor = Supervisor("test")
    await supervisor.start()
    supervisor.keep("forever", lambda: asyncio.Event().wait())
    await supervisor.stop()
    await supervisor.stop()


async def test_work_added_while_stopping_is_not_started_and_logs_nothing() -> None:
    """A loop woken in the same tick as stop() adds a unit before its own cancellation arrives: the unit is not run
    and no error is logged (the driver's dispatch loop did this, logging an AssertionError at every fast shutdown)."""
    supervisor = Supervisor("test")
    await supervisor.start()
    wake = asyncio.Event()
    ran: list[str] = []

    async def unit() -> None:
        ran.append("unit")

    async def dispatch() -> None:
        await wake.wait()
        supervisor.spawn("request", unit)
        supervisor.keep("loop", unit)

    with capture_logs() as logs:
        supervisor.keep("dispatch", dispatch)
        await asyncio.sleep(0)
        wake.set()  # dispatch is ready to run before stop()'s cancellation reaches it
        await supervisor.stop()
    assert ran == []
    assert not [e for e in logs if e["log_level"] in ("error", "warning")], logs


async def test_work_added_before_start_is_an_error() -> None:
    """Using a supervisor that was never started is a programming error, not a silent drop."""
    supervisor = Supervisor("test")
    with pytest.raises(RuntimeError, match="before start"):
        supervisor.spawn("request", asyncio.sleep)


async def test_supervision_names_each_units_problem_and_state_across_supervisors() -> None:
    """Two supervisors in one Supervision: a failing loop is named ``<supervisor>.<unit>`` in problems (what turns
    health NOT_SERVING) and down in units(), the other up; every change is told; after stop every loop is down."""
    told: list[dict[str, str]] = []
    supervision = Supervision(on_change=lambda: told.append(supervision.problems))
    spool = Supervisor("spool", supervision=supervision, restart_base=0.001)
    delivery = Supervisor("delivery", supervision=supervision)
    failing = asyncio.Event()
    idle = asyncio.Event()

    async def broken() -> None:
        failing.set()
        raise OSError("disk full")

    async def quiet() -> None:
        await idle.wait()

    await spool.start()
    await delivery.start()
    try:
        with capture_logs():
            spool.keep("writer", broken)
            delivery.keep("dispatcher", quiet)
            async with asyncio.timeout(5):
                await failing.wait()
                while not supervision.problems:
                    await asyncio.sleep(0)
        assert supervision.problems == {"spool.writer": "OSError"}
        assert supervision.units() == {"spool.writer": False, "delivery.dispatcher": True}
        assert told[0] == {"spool.writer": "OSError"}
    finally:
        await spool.stop()
        await delivery.stop()
    assert supervision.units() == {"spool.writer": False, "delivery.dispatcher": False}
