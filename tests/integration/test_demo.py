"""`segment-sidecar demo` as a newcomer runs it: it passes, shows message ids that visibly differ, and leaves nothing
in the temporary folder."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.harness import python_module_with_ctrl_c


def test_demo_shows_distinct_whole_ids_and_cleans_up(tmp_path: Path) -> None:
    """The demo exits 0; each accepted call prints a whole UUID, all different, and each arrives under that id; the
    spool folder it made under TMPDIR is gone afterwards; it says when the debugger page closes."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "demo", "--pause", "0"],
        env={**os.environ, "TMPDIR": str(temp)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    accepted = re.findall(rf"accepted, messageId=({uuid})$", result.stdout, re.MULTILINE)
    arrived = re.findall(rf"collector\].*messageId=({uuid})$", result.stdout, re.MULTILINE)
    assert len(accepted) == 6 and len(set(accepted)) == 6, result.stdout
    assert sorted(arrived) == sorted(accepted)
    assert "make demo ARGS=--keep-running" in result.stdout
    assert list(temp.iterdir()) == []


def test_keep_running_keeps_the_debugger_page_alive_until_ctrl_c(tmp_path: Path) -> None:
    """With --keep-running the debugger page the demo printed still answers after the flow; Ctrl-C (SIGINT) then ends
    the demo with status 0 and removes its spool folder."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    process = subprocess.Popen(
        python_module_with_ctrl_c("sidecar", "demo", "--pause", "0", "--keep-running"),
        env={**os.environ, "TMPDIR": str(temp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen: list[str] = []
        for line in process.stdout:  # ends at EOF, should the demo exit early
            seen.append(line)
            if line.startswith("running until Ctrl-C"):
                break
        output = "".join(seen)
        page = re.search(r"live debugger page: (http://\S+) \(open until Ctrl-C\)", output)
        assert page is not None and "running until Ctrl-C" in output, output
        with urllib.request.urlopen(page.group(1), timeout=10) as response:
            assert response.status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert list(temp.iterdir()) == []
