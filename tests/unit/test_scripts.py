"""The repository's scripts clean up after themselves."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gen_protos_check_leaves_no_temporary_folder(tmp_path: Path) -> None:
    """`scripts/gen_protos.sh --check` (as written, no `uv run`) passes and removes the folder it generated into."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = subprocess.run(
        ["scripts/gen_protos.sh", "--check"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(temp)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(temp.iterdir()) == []


def test_make_demo_passes_args_to_the_demo() -> None:
    """`make demo ARGS=--keep-running` (the demo's documented hint) runs the venv's demo with that option."""
    result = subprocess.run(
        ["make", "-n", "demo", "ARGS=--keep-running"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert ".venv/bin/segment-sidecar demo --keep-running" in result.stdout.splitlines()
