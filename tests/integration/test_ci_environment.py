"""A sidecar started under CI's environment (the variables ``.ci/run`` exports) warns about nothing: the test-control
variables have their own ``TEST_REQUIRE_`` prefix, outside the settings' ``SIDECAR_`` one."""

from __future__ import annotations

import re
from pathlib import Path

from sidecar.config import load
from tests.support.harness import TEST_ENV, Collectors, SidecarProcess, free_port

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"


def ci_environment() -> dict[str, str]:
    """Every ``NAME=value`` that ``.ci/run`` exports (``export A=1 B=2`` lines)."""
    exported: dict[str, str] = {}
    for line in CI_RUN.read_text().splitlines():
        if line.startswith("export ") and "$" not in line:
            exported.update(re.findall(r"([A-Z_][A-Z0-9_]*)=(\S*)", line))
    return exported


def test_ci_exports_test_controls_under_their_own_prefix() -> None:
    """.ci/run turns every optional suite into a required one with TEST_REQUIRE_* variables, none under SIDECAR_;
    and a SIDECAR_ name that is not a setting would indeed warn (so the process test below can fail)."""
    exported = ci_environment()
    assert {"TEST_REQUIRE_REDIS", "TEST_REQUIRE_BROWSER", "TEST_REQUIRE_CLIENTS", "TEST_REQUIRE_CONFORMANCE"} <= set(
        exported
    )
    assert not [name for name in exported if name.startswith("SIDECAR_")]
    _, warnings = load({"SIDECAR_REDIS_REQUIRED": "1"})
    assert warnings, "an unknown SIDECAR_ variable should warn"


async def test_a_sidecar_under_the_ci_environment_logs_no_unknown_setting(
    collectors: Collectors, tmp_path: Path
) -> None:
    """`python -m sidecar serve` with CI's exports starts, serves, stops on SIGTERM, and never logs unknown_setting."""
    env = {**ci_environment(), **TEST_ENV, **collectors.env(), "SIDECAR_SPOOL_DIR": str(tmp_path / "spool")}
    process = SidecarProcess(env, free_port(), tmp_path / "sidecar.log")
    process.start()
    try:
        await process.wait_ready()
        process.terminate()
        assert await process.wait_exit(timeout=20) == 0
    finally:
        process.ensure_stopped()
    log = process.read_log()
    assert "sidecar_started" in log
    assert "unknown_setting" not in log, log
