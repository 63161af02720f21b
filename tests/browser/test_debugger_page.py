"""The debugger page in a real headless browser: Debian's chromium, driven by playwright-core from node.

The sidecar runs in-process with the debugger on; ``debugger_page.mjs`` opens the page, and events are sent over gRPC
both before the page opens (shown from the stream's snapshot) and while it is open (shown live over SSE).
Skipped, with the reason, when chromium, node or ``tests/browser/node_modules`` is missing, unless
``TEST_REQUIRE_BROWSER=1`` (as ``.ci/run`` sets), which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar.model import write_key_hash
from tests.conftest import SidecarFactory

HERE = Path(__file__).parent
SCRIPT = HERE / "debugger_page.mjs"
CHROMIUM = os.environ.get("SIDECAR_CHROMIUM", "/usr/bin/chromium")
KEY = "wk-browser-secret-0123456789"
CAMPAIGN = b'{"campaign_id":"spring","email_id":"em-1","email_subject":"Hi"}'


def missing_tools() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is missing"
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        return "tests/browser/node_modules is missing (cd tests/browser && npm ci)"
    return None


@pytest.fixture
def browser_tools() -> None:
    """Skip (or fail when TEST_REQUIRE_BROWSER=1) without chromium, node and playwright-core."""
    reason = missing_tools()
    if reason is None:
        return
    if os.environ.get("TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"TEST_REQUIRE_BROWSER=1 but {reason}")
    print(f"skipping the browser test: {reason}")
    pytest.skip(reason)


async def read_line(stream: asyncio.StreamReader, expected: str, output: list[str]) -> None:
    """Read the script's stdout until a line equals ``expected`` (fail on FAILED or end of output)."""
    while True:
        line = (await asyncio.wait_for(stream.readline(), timeout=60)).decode().strip()
        output.append(line)
        if line == expected:
            return
        if not line or line.startswith("FAILED"):
            raise AssertionError("browser script: " + "\n".join(output))


@pytest.mark.usefixtures("browser_tools")
async def test_debugger_page_shows_live_events(sidecar_factory: SidecarFactory) -> None:
    """Accepted, delivered and rejected events (reason, Spec suggestion) show newest first, filter and open as JSON."""
    running = await sidecar_factory(SIDECAR_DEBUGGER_LISTEN="127.0.0.1:0")
    debugger = running.app.debugger
    assert debugger is not None
    stub = running.stub
    await stub.Track(pb.TrackRequest(write_key=KEY, user_id="u1", event="Email Delivered", properties_json=CAMPAIGN))
    await stub.Flush(pb.FlushRequest(), timeout=10)

    process = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        cwd=HERE,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "DEBUGGER_URL": f"http://127.0.0.1:{debugger.port}/",
            "KEY_HASH": write_key_hash(KEY),
            "SECRET_KEYS": KEY,
            "CHROMIUM": CHROMIUM,
        },
    )
    assert process.stdin is not None and process.stdout is not None
    output: list[str] = []
    try:
        await read_line(process.stdout, "READY", output)
        await stub.Track(pb.TrackRequest(write_key=KEY, user_id="u1", event="Email Opened", properties_json=CAMPAIGN))
        await stub.Identify(pb.IdentifyRequest(write_key=KEY, user_id="u1", traits_json=b'{"plan":"pro"}'))
        with pytest.raises(Exception, match="looks like the Spec event"):
            await stub.Track(pb.TrackRequest(write_key=KEY, user_id="u1", event="email open"))
        await stub.Flush(pb.FlushRequest(), timeout=10)
        process.stdin.write(b"SENT\n")
        await process.stdin.drain()
        await read_line(process.stdout, "OK", output)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0, "\n".join(output)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
