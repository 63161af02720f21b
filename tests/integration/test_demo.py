"""`segment-sidecar demo` as a newcomer runs it: it passes, shows message ids that visibly differ, and leaves nothing
in the temporary folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


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
