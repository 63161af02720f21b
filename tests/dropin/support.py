"""What the drop-in tests share: a sidecar with its HTTP intake, the tool checks, and the arrival checks.

Each test drives one of Segment's own libraries, unmodified, with only its host pointed at the sidecar. The Node and
Go programs run as child processes; their tools (node and ``tests/dropin/node_modules``, go) missing is a skip with
the reason, or a failure under ``TEST_REQUIRE_CLIENTS=1`` (as ``.ci/run`` sets): these libraries are clients too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from sidecar.collector.store import max_requests_in_window
from tests.support.harness import Collectors, SidecarUnderTest

HERE = Path(__file__).parent
CAP = 20.0
"""The request cap the drop-in sidecars run with, checked at the collectors."""
DROPIN_ENV = {"SIDECAR_HTTP_LISTEN": "127.0.0.1:0", "SIDECAR_MAX_REQUESTS_PER_SECOND": str(CAP)}


def require(reason: str | None) -> None:
    """Skip with the reason (fail under TEST_REQUIRE_CLIENTS=1) when a tool is missing."""
    if reason is None:
        return
    if os.environ.get("TEST_REQUIRE_CLIENTS") == "1":
        pytest.fail(f"TEST_REQUIRE_CLIENTS=1 but {reason}")
    print(f"skipping: {reason}")
    pytest.skip(reason)


def node_missing() -> str | None:
    """Why the Node library cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is missing"
    if not (HERE / "node_modules" / "@segment" / "analytics-node").is_dir():
        return "tests/dropin/node_modules is missing (make setup, or cd tests/dropin && npm ci)"
    return None


def go_missing() -> str | None:
    """Why the Go library cannot run here, or None."""
    return "go is missing" if shutil.which("go") is None else None


def http_origin(running: SidecarUnderTest) -> str:
    """The HTTP intake's origin, as a library's host setting."""
    assert running.app.http_intake is not None
    return f"http://127.0.0.1:{running.app.http_intake.port}"


async def run_program(command: list[str], plan: dict[str, Any], cwd: Path, timeout: float = 90) -> dict[str, Any]:
    """Run a drop-in program with its plan; return the JSON line it prints (fail with its output otherwise)."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env={**os.environ, "DROPIN_PLAN": orjson.dumps(plan).decode()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, f"{command} exited {process.returncode}:\n{stderr.decode()[-3000:]}"
    result: dict[str, Any] = orjson.loads(stdout.splitlines()[-1])
    return result


async def wait_delivered(collectors: Collectors, count: int, timeout: float = 30) -> None:
    """Wait until ``count`` events arrived across both collectors."""

    async def arrived() -> None:
        while collectors.us.store.accepted_event_count + collectors.eu.store.accepted_event_count < count:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(arrived(), timeout)


def assert_arrived_once(collectors: Collectors, expected: dict[str, set[str]], region: str = "us") -> None:
    """Each write key's expected ids arrived in ``region``'s collector exactly once, with context.integration, and
    the collectors together never saw more requests in a second than the cap."""
    store = (collectors.us if region == "us" else collectors.eu).store
    for write_key, ids in expected.items():
        events = store.events(write_key)
        arrived = [event["messageId"] for event in events]
        assert len(arrived) == len(set(arrived)), f"{write_key}: duplicates"
        assert set(arrived) == ids, f"{write_key}: {len(ids - set(arrived))} missing, {len(set(arrived) - ids)} extra"
        assert all(event["context"]["integration"]["name"] == "acme-mail" for event in events)
    starts = [request.started_at for c in (collectors.us, collectors.eu) for request in c.store.requests]
    assert max_requests_in_window(starts, 1.0) <= CAP
