"""The ``segment-sidecar`` command line: help that tells a newcomer how to configure the sidecar."""

from __future__ import annotations

import pytest

from sidecar.__main__ import main
from sidecar.config import describe


def test_serve_help_lists_every_setting_and_points_to_config_table(capsys: pytest.CaptureFixture[str]) -> None:
    """`segment-sidecar serve --help` names every SIDECAR_* variable with its default, and `config-table`."""
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "config-table" in out
    assert "rest" not in out
    for name, default, _ in describe():
        assert f"{name} (default {default})" in out
