"""The shared conformance scenario (clients/conformance) run with the blocking and the asyncio client.

The harness starts a real sidecar and two local collectors; it needs a Python with the ``sidecar`` package
(``SIDECAR_PYTHON``, or the repository's ``.venv``). Without one the test skips, saying why, unless
``TEST_REQUIRE_CONFORMANCE=1``, when it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from segment_sidecar_client import (
    Alias,
    AsyncClient,
    Client,
    Event,
    Group,
    Identify,
    InvalidEventError,
    Page,
    Screen,
    SidecarError,
    Track,
    to_struct,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
HARNESS = REPO_ROOT / "clients" / "conformance" / "harness.py"
START_TIMEOUT = 90.0
EVENT_TYPES: dict[str, Any] = {
    "track": Track,
    "identify": Identify,
    "page": Page,
    "screen": Screen,
    "group": Group,
    "alias": Alias,
}
OBJECT_FIELDS = ("properties", "traits", "context", "integrations")


def harness_python() -> str:
    """The interpreter the conformance contract names: SIDECAR_PYTHON, the repository's venv, or python3."""
    if os.environ.get("SIDECAR_PYTHON"):
        return os.environ["SIDECAR_PYTHON"]
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else "python3"


@dataclass
class Harness:
    """A running harness: the sidecar's address, the check URL, the scenario (and with --outcomes a restart URL)."""

    address: str
    check_url: str
    scenario: dict[str, Any]
    restart_url: str = ""
    """With ``up --outcomes``: POST here to SIGKILL and restart the sidecar (same address, same spool)."""

    def check(self) -> dict[str, Any]:
        """Ask the harness whether the collectors received exactly the expected events."""
        request = urllib.request.Request(self.check_url, data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.load(response))


def _unavailable(reason: str) -> None:
    if os.environ.get("TEST_REQUIRE_CONFORMANCE") == "1":
        pytest.fail(f"conformance harness required but unavailable: {reason}")
    pytest.skip(f"conformance harness unavailable: {reason}")


@contextlib.contextmanager
def running_harness(*options: str) -> Iterator[Harness]:
    """Start ``harness.py up`` with ``options``, yield it once ready, stop it by closing its stdin."""
    try:
        process = subprocess.Popen(
            [harness_python(), str(HARNESS), "up", *options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO_ROOT,
        )
    except OSError as exc:
        _unavailable(f"cannot run {harness_python()}: {exc}")
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        line = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if selector.select(timeout=START_TIMEOUT):
                line = process.stdout.readline()
        if not line:
            process.kill()
            process.wait()
            _unavailable(f"the harness exited with status {process.returncode} before it was ready (see stderr)")
        info = json.loads(line)
        scenario = json.loads(Path(info["scenario"]).read_text())
        yield Harness(info["sidecar_address"], info["check_url"], scenario, info.get("restart_url", ""))
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    """Start the harness once for this module."""
    with running_harness() as started:
        yield started


def build(call: str, request: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for the client from a scenario request: JSON objects as dicts or, if asked, Structs."""
    fields = {}
    for key, value in request.items():
        if key.endswith("_as"):
            continue
        as_struct = key in OBJECT_FIELDS and request.get(f"{key}_as", "json") == "struct"
        fields[key] = to_struct(value) if as_struct else value
    return fields


def event_of(step: dict[str, Any]) -> Event:
    """The typed event of a batch item."""
    return EVENT_TYPES[step["call"]](**build(step["call"], step["request"]))  # type: ignore[no-any-return]


def check_error(error: SidecarError, expect: dict[str, Any]) -> None:
    """A failed call matches an ``expect`` of ``{"ok": false, "code", "field"}``."""
    assert not expect["ok"], f"expected success, got {error}"
    assert error.code.name == expect["code"]
    assert isinstance(error, InvalidEventError)
    assert error.field == expect["field"], error.violations


def check_batch(results: list[Any], sent: list[Event], expect: dict[str, Any]) -> None:
    """Batch results match ``expect.results``, one by one."""
    assert len(results) == len(expect["results"])
    for result, event, want in zip(results, sent, expect["results"], strict=True):
        if want["ok"]:
            assert result.ok, result
            assert result.message_id == event.message_id
        else:
            assert result.rejection is not None, result
            assert grpc.StatusCode[want["code"]].value[0] == result.rejection.code
            assert result.rejection.field == want["field"]


def test_scenario_with_the_blocking_client(harness: Harness) -> None:
    """Every step of the scenario behaves as expected and the collectors receive exactly the expected events."""
    with Client(harness.address) as client:
        for step in harness.scenario["steps"]:
            if step["call"] == "batch":
                events = [event_of(item) for item in step["events"]]
                check_batch(client.batch(events), events, step["expect"])
                continue
            method = getattr(client, step["call"])
            try:
                ack = method(**build(step["call"], step["request"]))
            except SidecarError as exc:
                check_error(exc, step["expect"])
            else:
                assert step["expect"]["ok"], f"{step['request']['message_id']} was accepted"
                assert ack.message_id == step["request"]["message_id"]
        client.flush()
    verdict = harness.check()
    assert verdict["ok"], verdict.get("diff")


async def test_scenario_with_the_asyncio_client(harness: Harness) -> None:
    """The asyncio client produces the same events (re-sent ids count once at the collectors)."""
    async with AsyncClient(harness.address) as client:
        for step in harness.scenario["steps"]:
            if step["call"] == "batch":
                events = [event_of(item) for item in step["events"]]
                check_batch(await client.batch(events), events, step["expect"])
                continue
            method = getattr(client, step["call"])
            try:
                ack = await method(**build(step["call"], step["request"]))
            except SidecarError as exc:
                check_error(exc, step["expect"])
            else:
                assert step["expect"]["ok"], f"{step['request']['message_id']} was accepted"
                assert ack.message_id == step["request"]["message_id"]
        await client.flush()
    started = time.monotonic()
    verdict = harness.check()
    assert verdict["ok"], verdict.get("diff")
    assert time.monotonic() - started < 30
