"""``segment-sidecar collector`` as another process sees it: one JSON line on stdout, then a clean stop on SIGTERM."""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from sidecar.collector.cli import main
from tests.support.harness import CTRL_C_REACHES_PYTHON

RUNNER = CTRL_C_REACHES_PYTHON + "import sys; from sidecar.collector.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture
def run_cli() -> Iterator[list[subprocess.Popen[str]]]:
    """Started CLI processes, killed at the end if a test left one running."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def start(processes: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    """Start the CLI with this interpreter (the project's venv)."""
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.append(process)
    return process


def post_batch(url: str, key: str) -> int:
    """POST one track event over a plain blocking client; return the status."""
    body = json.dumps({"batch": [{"type": "track", "userId": "u", "event": "E", "messageId": "cli-1"}]}).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
    }
    request = urllib.request.Request(url + "/v1/batch", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def test_cli_prints_one_json_line_and_stops_on_sigterm(run_cli: list[subprocess.Popen[str]]) -> None:
    """With ports 0 the line carries the real ports; both serve; SIGTERM exits 0 with nothing more on stdout."""
    process = start(run_cli, "--us-port", "0", "--eu-port", "0")
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the line is flushed (the test's timeout bounds it)
    urls = json.loads(line)
    assert set(urls) == {"us", "eu"}
    assert urls["us"].startswith("http://127.0.0.1:")
    assert urls["us"] != urls["eu"]
    assert post_batch(urls["us"], "cli-key") == 200
    assert post_batch(urls["eu"], "cli-key") == 200
    with urllib.request.urlopen(urls["eu"] + "/_collector/requests", timeout=5) as response:
        summary = json.loads(response.read())
    assert (summary["region"], summary["count"]) == ("eu", 1)

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert time.monotonic() - started < 5
    assert stdout == ""
    assert "cli-key" not in stderr


def test_cli_stops_on_sigint(run_cli: list[subprocess.Popen[str]]) -> None:
    """Ctrl-C (SIGINT) stops the collectors cleanly too."""
    process = start(run_cli, "--us-port", "0", "--eu-port", "0")
    assert process.stdout is not None
    json.loads(process.stdout.readline())
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr


def test_cli_port_in_use_exits_1(run_cli: list[subprocess.Popen[str]]) -> None:
    """A port already taken is reported on stderr with exit status 1, and no JSON line is printed."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        process = start(run_cli, "--us-port", port, "--eu-port", "0")
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 1
    assert stdout == ""
    assert "cannot listen" in stderr


def test_cli_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown option is exit status 2, from ``main`` itself (no process needed)."""
    assert main(["--nonsense"]) == 2
    assert "--nonsense" in capsys.readouterr().err


def status_with_host(url: str, host: str) -> int:
    """GET the collector's request summary with a forged Host header; return the status."""
    request = urllib.request.Request(url + "/_collector/requests", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_cli_allow_host_adds_a_name_and_others_are_refused(run_cli: list[subprocess.Popen[str]]) -> None:
    """`--allow-host` names a Host the collectors answer; a rebound name still gets 403 (DNS rebinding guard)."""
    process = start(run_cli, "--us-port", "0", "--eu-port", "0", "--allow-host", "collector.test")
    assert process.stdout is not None
    urls = json.loads(process.stdout.readline())
    for url in urls.values():
        assert status_with_host(url, "collector.test") == 200
        assert status_with_host(url, "localhost") == 200
        assert status_with_host(url, "rebound.example") == 403
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=10)
