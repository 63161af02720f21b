"""The Go client's README works as written (issue 21, item 10): its ``go.mod`` (a ``require`` at v0.0.0 and a
``replace`` onto the checkout) and its ``main.go`` make a fresh module outside the repository that builds with
``go mod tidy`` and runs against a real sidecar, whose events reach the collector.

The blocks are read from clients/go/README.md (each follows a ``<!-- tested: NAME -->`` marker), so the test follows
the README as it changes. Only the README's placeholder path to the checkout is replaced by the real one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sidecar.collector.server import Collector
from tests.support.harness import SidecarProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "clients" / "go" / "README.md"
PLACEHOLDER = "/path/to/segment-sidecar"


def readme_block(name: str) -> str:
    """The fenced block that follows ``<!-- tested: name -->`` in the Go client's README."""
    found = re.search(rf"<!-- tested: {re.escape(name)} -->\n```[a-z]*\n(.*?)^```$", README.read_text(), re.M | re.S)
    assert found is not None, f"clients/go/README.md has no block marked 'tested: {name}'"
    return found.group(1)


async def test_the_go_readme_example_builds_and_runs_in_a_fresh_module(
    ready_process: SidecarProcess, collector: Collector, tmp_path: Path
) -> None:
    """A module made of the README's go.mod (checkout path filled in) and main.go, outside the repository, builds
    and runs with the README's commands; its three events (a Track, then a Batch of two) reach the collector.
    On 99dcdba the README offered only `go get`, which fails: the module path is not published."""
    go = shutil.which("go")
    if go is None:
        if os.environ.get("TEST_REQUIRE_CLIENTS") or os.environ.get("CI"):
            pytest.fail("Go is not installed, and CI requires the client tests")
        pytest.skip("Go is not installed")
    service = tmp_path / "myservice"
    service.mkdir()
    assert not service.is_relative_to(ROOT)
    go_mod = readme_block("go.mod")
    assert PLACEHOLDER in go_mod
    (service / "go.mod").write_text(go_mod.replace(PLACEHOLDER, str(ROOT)))
    (service / "main.go").write_text(readme_block("main.go"))
    commands = readme_block("setup")
    result = subprocess.run(
        ["sh", "-ec", commands],
        cwd=service,
        env={**os.environ, "SIDECAR_ADDRESS": ready_process.address, "GOFLAGS": "-mod=mod"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "spooled " in result.stderr
    await collector.store.wait_until(lambda store: len(store.events("my-write-key")) >= 3, timeout=20)
    assert sorted(e["type"] for e in collector.store.events("my-write-key")) == ["identify", "track", "track"]
