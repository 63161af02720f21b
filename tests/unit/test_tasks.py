"""The supervisor: a failing loop is logged once with its traceback, restarted and reported until it says it is fine."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from sidecar.tasks import Supervisor


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
    failed = [e for e in logs if e["event"] == "delivery_task_failed"]
    again = [e for e in logs if e["event"] == "delivery_task_failed_again"]
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
                while not any(e["event"] == "delivery_task_failed" for e in logs):
                    await asyncio.sleep(0)
    finally:
        await supervisor.stop()
    failed = [e for e in logs if e["event"] == "delivery_task_failed"]
    assert [e["task"] for e in failed] == ["bad"] and failed[0]["exc_info"]


async def test_stop_is_idempotent_and_safe_without_start() -> None:
    """Lifecycle: stop without start, and twice after start, is fine; running loops are cancelled."""
    await Supervisor("never").stop()
    supervisor = Supervisor("test")
    await supervisor.start()
    supervisor.keep("forever", lambda: asyncio.Event().wait())
    await supervisor.stop()
    await supervisor.stop()
