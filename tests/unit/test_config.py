"""The configuration: parsed once, every bad variable named, unknown ones warned about, the README kept in sync."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.config import describe, load
from sidecar.errors import ConfigError
from sidecar.model import Region

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_partner_rules() -> None:
    """With no variables, the sidecar uses Segment's limits and the partner cap."""
    settings, warnings = load({})
    assert warnings == []
    assert settings.max_requests_per_second == 50
    assert settings.batch_max_bytes == 475_000 and settings.batch_max_events == 2500
    assert settings.flush_interval == 1.0 and settings.shutdown_grace == 25.0
    assert settings.default_region is Region.US and settings.spool == "disk"
    assert settings.spool_max_bytes == 2 * 2**30


def test_durations_sizes_and_lists_parse() -> None:
    """Durations, sizes and lists accept their human forms."""
    settings, _ = load(
        {
            "SIDECAR_FLUSH_INTERVAL": "250ms",
            "SIDECAR_MAX_EVENT_AGE": "2h",
            "SIDECAR_SPOOL_MAX_BYTES": "64MiB",
            "SIDECAR_SPEC_ALLOW": "Email Sent, SMS Sent,",
            "SIDECAR_DEFAULT_REGION": "eu",
        }
    )
    assert settings.flush_interval == 0.25 and settings.max_event_age == 7200
    assert settings.spool_max_bytes == 64 * 2**20
    assert settings.spec_allow == ("Email Sent", "SMS Sent")
    assert settings.default_region is Region.EU


def test_every_bad_variable_is_reported_by_name_without_its_value() -> None:
    """All problems come back at once, each naming its variable, none echoing a value (it may be a secret)."""
    with pytest.raises(ConfigError) as raised:
        load(
            {
                "SIDECAR_FLUSH_INTERVAL": "soon",
                "SIDECAR_INTEGRATION_NAME": "Not A Slug",
                "SIDECAR_BATCH_MAX_BYTES": "600000",
                "SIDECAR_ENDPOINT_US": "ftp://secret-token@host/path",
            }
        )
    text = str(raised.value)
    for name in (
        "SIDECAR_FLUSH_INTERVAL",
        "SIDECAR_INTEGRATION_NAME",
        "SIDECAR_BATCH_MAX_BYTES",
        "SIDECAR_ENDPOINT_US",
    ):
        assert name in text
    assert "secret-token" not in text and "Not A Slug" not in text


def test_unknown_variables_only_warn() -> None:
    """A variable meant for a newer version is a warning, not an error."""
    _, warnings = load({"SIDECAR_FROM_THE_FUTURE": "1", "OTHER": "x"})
    assert warnings == ["SIDECAR_FROM_THE_FUTURE is not a setting of this version and is ignored"]


def test_serve_exits_2_before_binding_on_bad_config(tmp_path: Path) -> None:
    """`segment-sidecar serve` with a bad variable prints every problem and exits 2."""
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SIDECAR_SPOOL": "tape", "SIDECAR_LISTEN": "nowhere", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2
    assert "SIDECAR_SPOOL" in result.stderr and "SIDECAR_LISTEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_readme_table_matches_the_settings() -> None:
    """The README's variable table is the one `segment-sidecar config-table` generates."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- config-table:start -->\n")[1].split("\n<!-- config-table:end -->")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [name for name, _, _ in describe()]
    for (name, default, meaning), row in zip(describe(), rows, strict=True):
        assert row == f"| `{name}` | `{default}` | {meaning} |"
