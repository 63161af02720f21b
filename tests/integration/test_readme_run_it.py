"""README's "Run it" works as written: its shell blocks start a collector and a sidecar pointed at it, and its Python
and grpcurl blocks deliver events there; "Call it from your service"'s Python snippet runs as written too.

The blocks are read from README.md, so the test follows the README as it changes. Only the documented ports (8765,
8766, 50051) are replaced by free ones, since parallel runs share loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.support.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def section(title: str) -> str:
    """The text of README's ``## title`` section."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def blocks(text: str, language: str) -> list[str]:
    """The fenced code blocks of ``language`` in ``text``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll until something accepts connections on loopback ``port`` (fails if ``process`` ends first)."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"exited with {process.returncode}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, f"nothing listens on {port} after {timeout} s"
        time.sleep(0.05)


@pytest.fixture
def ports() -> dict[str, str]:
    """Free ports for the ones README documents."""
    return {"8765": str(free_port()), "8766": str(free_port()), "50051": str(free_port())}


def localise(command: str, ports: dict[str, str]) -> str:
    """``command`` with README's ports replaced by this test's."""
    return re.sub(r"(?<=:)(8765|8766|50051)\b", lambda m: ports[m.group(1)], command)


@pytest.fixture
def running(ports: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """README's terminal 1 and terminal 2, started as written (ports aside) from the repository root."""
    collector_block, serve_block, *_ = blocks(section("Run it"), "sh")
    env = {**os.environ, "SIDECAR_SPOOL_DIR": str(tmp_path / "spool"), "SIDECAR_LOG_FORMAT": "json"}
    env.pop("SIDECAR_LISTEN", None)
    started: list[subprocess.Popen[bytes]] = []
    try:
        for block, port in ((collector_block, ports["8765"]), (serve_block, ports["50051"])):
            script = localise(block, ports)
            if block is collector_block:  # the documented default ports are the collector's own defaults
                script = script.replace(
                    "collector", f"collector --us-port {ports['8765']} --eu-port {ports['8766']}", 1
                )
            if block is serve_block:
                script = f"export SIDECAR_LISTEN=127.0.0.1:{ports['50051']}\n{script}"
            log = (tmp_path / f"{len(started)}.log").open("wb")
            process = subprocess.Popen(
                ["bash", "-c", f"exec {script.strip()}" if "\n" not in script.strip() else script],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            started.append(process)
            wait_for_port(int(port), process)
        yield ports
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def collected(ports: dict[str, str], write_key: str, n: int) -> list[dict[str, object]]:
    """Wait (server side, bounded) for ``n`` events of ``write_key`` at the collector's US region; return them."""
    url = f"http://127.0.0.1:{ports['8765']}/_collector/events?write_key={write_key}&wait_for={n}&timeout=15"
    with urllib.request.urlopen(url, timeout=30) as response:
        events: list[dict[str, object]] = orjson.loads(response.read())
    return events


def run_block(block: str, ports: dict[str, str], tmp_path: Path, env: dict[str, str] | None = None) -> str:
    """Run a shell block from the repository root (ports localised); return its output, failing on non-zero."""
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", localise(block, ports)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_run_it_delivers_a_python_event_to_the_local_collector(running: dict[str, str], tmp_path: Path) -> None:
    """Terminal 3's Python block is accepted and the event reaches the collector terminal 1 started."""
    python_block = blocks(section("Run it"), "sh")[2]
    # The client's default address is 127.0.0.1:50051; SIDECAR_ADDRESS is how it is told this test's port.
    out = run_block(python_block, running, tmp_path, {"SIDECAR_ADDRESS": f"127.0.0.1:{running['50051']}"})
    message_id = out.split()[-1]
    events = collected(running, "my-write-key", 1)
    assert [e["messageId"] for e in events] == [message_id]
    assert events[0]["context"]["integration"]["name"] == "my-email-tool"  # type: ignore[index]
    (curl,) = re.findall(r"`(curl [^`]+)`", section("Run it"))
    if shutil.which("curl"):  # the README's way to read them back, as written
        assert [e["messageId"] for e in orjson.loads(run_block(curl, running, tmp_path))] == [message_id]


def test_run_it_grpcurl_block_delivers_by_reflection(running: dict[str, str], tmp_path: Path) -> None:
    """The grpcurl block (installed by `make grpcurl`) makes a Track call by reflection that reaches the collector."""
    if not (ROOT / "tools" / "go-bin" / "grpcurl").exists():
        if os.environ.get("TEST_REQUIRE_GRPCURL") == "1":
            pytest.fail("TEST_REQUIRE_GRPCURL=1 but tools/go-bin/grpcurl is missing (make grpcurl)")
        pytest.skip("grpcurl is not installed (make grpcurl)")
    grpcurl_block = blocks(section("Run it"), "sh")[3]
    reply = orjson.loads(run_block(grpcurl_block, running, tmp_path))
    assert [e["messageId"] for e in collected(running, "my-write-key", 1)] == [reply["message_id"]]


def test_call_it_from_your_service_python_snippet_runs_as_written(running: dict[str, str], tmp_path: Path) -> None:
    """The Python snippet defines every name it uses: run as a script, its event is accepted and delivered."""
    (snippet,) = blocks(section("Call it from your service"), "python")
    script = tmp_path / "snippet.py"
    script.write_text(snippet)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT / "clients" / "python" / "src"),
            "SIDECAR_ADDRESS": f"127.0.0.1:{running['50051']}",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(collected(running, "my-write-key", 1)) == 1
