"""The configuration: parsed once, every bad variable named, unknown ones warned about, the README kept in sync."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.config import SEGMENT_MAX_EVENT_BYTES, listens_on_loopback, load
from sidecar.config_checks import MIN_DISK_SPOOL_BYTES, spool_dir_problem
from sidecar.config_table import GROUPS, describe, describe_groups, markdown
from sidecar.errors import ConfigError
from sidecar.model import Region
from sidecar.spool.bound import ROW_OVERHEAD_BYTES
from sidecar.spool.sqlite import SqliteStore

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
    """The README's variable tables are exactly what `segment-sidecar config-table` generates, section by section."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- config-table:start -->\n")[1].split("\n<!-- config-table:end -->")[0]
    assert table == markdown()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [name for name, _, _ in describe()]


def test_every_setting_sits_in_a_section_that_starts_with_a_real_field() -> None:
    """Each README section starts at a field that exists, and together the sections hold every setting once."""
    from sidecar.config import Settings  # noqa: PLC0415 - the field names, beside the sections

    assert set(GROUPS) <= set(Settings.model_fields)
    grouped = [name for _, rows in describe_groups() for name, _, _ in rows]
    assert grouped == [name for name, _, _ in describe()]
    assert [title for title, _ in describe_groups()] == list(GROUPS.values())


def test_defaults_are_written_as_the_readme_writes_them() -> None:
    """Durations and sizes show in their human units (24h, 7d, 500ms, 2GiB), never as 86400.0 or 2147483648."""
    shown = {name: default for name, default, _ in describe()}
    assert shown["SIDECAR_MAX_EVENT_AGE"] == "24h"
    assert shown["SIDECAR_SPOOL_DEAD_LETTER_MAX_AGE"] == "7d"
    assert shown["SIDECAR_RETRY_BASE_DELAY"] == "500ms"
    assert shown["SIDECAR_SHUTDOWN_GRACE"] == "25s"
    assert shown["SIDECAR_SPOOL_MAX_BYTES"] == "2GiB"
    assert shown["SIDECAR_BATCH_MAX_BYTES"] == "475000"
    assert shown["SIDECAR_MAX_REQUESTS_PER_SECOND"] == "50"
    assert shown["SIDECAR_OAUTH_REQUIRED"] == "false"
    written = {
        name: shown[name] for name in ("SIDECAR_MAX_EVENT_AGE", "SIDECAR_SPOOL_MAX_BYTES", "SIDECAR_RETRY_MAX_DELAY")
    }
    settings, _ = load(written)  # the defaults, as written, read back as the same values
    assert (settings.max_event_age, settings.spool_max_bytes, settings.retry_max_delay) == (86400, 2 * 2**30, 60)
    assert all(meaning for _, _, meaning in describe())


# --- SIDECAR_MODE and the settings as a whole


def refused(environ: dict[str, str]) -> str:
    """The text of the ConfigError ``environ`` raises (fails the test when it loads)."""
    with pytest.raises(ConfigError) as raised:
        load(environ)
    return str(raised.value)


GATEWAYS = "10.0.0.7:50051"


@pytest.mark.parametrize(
    ("environ", "variables"),
    [
        ({"SIDECAR_MODE": "edge"}, ["SIDECAR_FORWARD_TO"]),
        (
            {"SIDECAR_MODE": "edge", "SIDECAR_FORWARD_TO": GATEWAYS, "SIDECAR_REDIS_URL": "redis://r:6379/0"},
            ["SIDECAR_REDIS_URL"],
        ),
        (
            {"SIDECAR_FORWARD_TO": GATEWAYS, "SIDECAR_REDIS_KEY": "k", "SIDECAR_FLEET_SIZE": "3"},
            ["SIDECAR_REDIS_KEY", "SIDECAR_FLEET_SIZE"],
        ),
        ({"SIDECAR_MODE": "gateway"}, ["SIDECAR_AUTH_TOKEN"]),
        (
            {"SIDECAR_MODE": "gateway", "SIDECAR_AUTH_TOKEN": "t", "SIDECAR_FORWARD_TO": GATEWAYS},
            ["SIDECAR_FORWARD_TO"],
        ),
        ({"SIDECAR_MODE": "standalone", "SIDECAR_FORWARD_TO": GATEWAYS}, ["SIDECAR_FORWARD_TO"]),
        ({"SIDECAR_FORWARD_TOKEN": "t"}, ["SIDECAR_FORWARD_TOKEN"]),
        ({"SIDECAR_REDIS_KEY": "budget"}, ["SIDECAR_REDIS_KEY"]),
        ({"SIDECAR_FLEET_SIZE": "4"}, ["SIDECAR_FLEET_SIZE"]),
        ({"SIDECAR_MODE": "fleet"}, ["SIDECAR_MODE"]),
    ],
)
def test_mode_combinations_are_refused_by_variable_name(environ: dict[str, str], variables: list[str]) -> None:
    """Each mode's missing or contradictory variables are refused at start, every one named."""
    text = refused(environ)
    for variable in variables:
        assert f"  {variable}: " in text, text


def test_a_blank_forward_to_is_unset_whether_or_not_another_variable_fails() -> None:
    """SIDECAR_FORWARD_TO of spaces infers no edge: alone the sidecar loads standalone, and beside a bad variable
    the error names that variable alone (the combination checks read the mode the same way)."""
    settings, _ = load({"SIDECAR_FORWARD_TO": "  "})
    assert settings.mode == "standalone"
    with pytest.raises(ConfigError) as error:
        load({"SIDECAR_FORWARD_TO": "  ", "SIDECAR_SPOOL": "floppy"})
    assert "SIDECAR_SPOOL" in str(error.value)
    assert "SIDECAR_FORWARD_TO" not in str(error.value)


def test_valid_modes_load_and_an_inferred_edge_warns() -> None:
    """standalone (alone or with Redis, a fleet member), an explicit edge and a gateway with its token load without
    a warning; gateways to forward to without a mode still make an edge, with a warning asking for SIDECAR_MODE."""
    assert load({})[0].mode == "standalone"
    member, warnings = load({"SIDECAR_REDIS_URL": "redis://r:6379/0", "SIDECAR_FLEET_SIZE": "3"})
    assert member.mode == "standalone" and member.redis_url and warnings == []
    edge, warnings = load({"SIDECAR_MODE": "Edge", "SIDECAR_FORWARD_TO": GATEWAYS})
    assert edge.mode == "edge" and warnings == []
    gateway, warnings = load(
        {"SIDECAR_MODE": "gateway", "SIDECAR_AUTH_TOKEN": "t", "SIDECAR_REDIS_URL": "redis://r:6379/0"}
    )
    assert gateway.mode == "gateway" and warnings == []
    inferred, warnings = load({"SIDECAR_FORWARD_TO": GATEWAYS})
    assert inferred.mode == "edge"
    assert warnings == [
        "SIDECAR_MODE is unset: running as an edge because SIDECAR_FORWARD_TO is set; set SIDECAR_MODE=edge"
    ]


def test_field_and_combination_problems_come_back_together() -> None:
    """A bad field and a bad combination are reported in one start, so one fix-and-retry is enough."""
    text = refused({"SIDECAR_MODE": "gateway", "SIDECAR_FLUSH_INTERVAL": "soon"})
    assert "SIDECAR_FLUSH_INTERVAL" in text and "SIDECAR_AUTH_TOKEN" in text


@pytest.mark.parametrize(
    "origin",
    [
        "http://user:secret-pw@127.0.0.1:8765",
        "https://api.segment.io?debug=1",
        "https://api.segment.io/#fragment",
        "https://:8443",
        "https://api.segment.io:99999",
        "https://api.segment.io/v1",
    ],
)
def test_an_endpoint_must_be_a_bare_origin(origin: str) -> None:
    """User info, a query, a fragment, a path, no host or a bad port: exit 2 naming the variable, never the value."""
    text = refused({"SIDECAR_ENDPOINT_US": origin, "SIDECAR_OAUTH_ENDPOINT_EU": origin})
    assert "SIDECAR_ENDPOINT_US" in text and "SIDECAR_OAUTH_ENDPOINT_EU" in text
    assert "secret-pw" not in text


def test_bounds_and_addresses_that_cannot_work_are_refused() -> None:
    """A disk spool bound below an empty spool, a unix: listen address without a path, and an integration version
    longer than a version string (it rides on every event) are refused by name."""
    text = refused({"SIDECAR_SPOOL_MAX_BYTES": "64KiB"})
    assert "SIDECAR_SPOOL_MAX_BYTES: at least 327680" in text
    assert "SIDECAR_SPOOL_MAX_BYTES" in refused({"SIDECAR_SPOOL": "memory", "SIDECAR_SPOOL_MAX_BYTES": "1KiB"})
    assert load({"SIDECAR_SPOOL_MAX_BYTES": "320KiB"})[0].spool_max_bytes == MIN_DISK_SPOOL_BYTES
    for listen in ("unix:", "unix:  "):
        assert "SIDECAR_LISTEN: unix: needs a socket path" in refused({"SIDECAR_LISTEN": listen})
    assert "SIDECAR_METRICS_LISTEN" in refused({"SIDECAR_METRICS_LISTEN": "unix:"})
    assert "SIDECAR_INTEGRATION_VERSION" in refused({"SIDECAR_INTEGRATION_VERSION": "1." * 40_000})
    assert "SIDECAR_INTEGRATION_VERSION" in refused({"SIDECAR_INTEGRATION_VERSION": "1.0\n"})
    assert "SIDECAR_INTEGRATION_VERSION" in refused({"SIDECAR_INTEGRATION_VERSION": " "})
    assert load({"SIDECAR_INTEGRATION_VERSION": "2.3.0-rc.1+build.5"})[0].integration_version == "2.3.0-rc.1+build.5"


def test_the_smallest_disk_spool_bound_holds_an_empty_spool_and_one_largest_event(tmp_path: Path) -> None:
    """MIN_DISK_SPOOL_BYTES is measured, not guessed: a fresh SQLite spool opened with that bound, plus one largest
    event counted as the bound counts it (twice: log and table), fits; the spool's schema growing breaks this test."""
    store = SqliteStore(tmp_path)
    store.open(MIN_DISK_SPOOL_BYTES)
    try:
        empty = store.used_bytes()
    finally:
        store.close()
    assert empty + 2 * (SEGMENT_MAX_EVENT_BYTES + ROW_OVERHEAD_BYTES) <= MIN_DISK_SPOOL_BYTES
    assert empty > 64 * 1024  # the example: 64KiB could never hold even an empty spool


def test_a_dead_letter_bound_cut_to_a_quarter_is_refused_or_said() -> None:
    """An explicit dead-letter bound over a quarter of the spool's is refused (it was silently cut); the default
    being cut is said in a warning with the bound that applies."""
    text = refused({"SIDECAR_SPOOL_MAX_BYTES": "512MiB", "SIDECAR_SPOOL_DEAD_LETTER_MAX_BYTES": "200MiB"})
    assert "SIDECAR_SPOOL_DEAD_LETTER_MAX_BYTES: at most a quarter" in text
    settings, warnings = load({"SIDECAR_SPOOL_MAX_BYTES": "512MiB"})
    assert settings.spool_max_bytes == 512 * 2**20
    assert warnings == [
        "SIDECAR_SPOOL_DEAD_LETTER_MAX_BYTES is 134217728 bytes, a quarter of SIDECAR_SPOOL_MAX_BYTES "
        "(its default is larger than that)"
    ]
    assert load({"SIDECAR_SPOOL_MAX_BYTES": "512MiB", "SIDECAR_SPOOL_DEAD_LETTER_MAX_BYTES": "128MiB"})[1] == []


def test_an_unusable_spool_folder_is_named(tmp_path: Path) -> None:
    """A spool path that is a file, or one under a file (it cannot be created), is a problem naming
    SIDECAR_SPOOL_DIR; a folder still to be created under a writable one is fine, and a memory spool needs none."""
    afile = tmp_path / "a-file"
    afile.write_text("x")
    for folder in (afile, afile / "spool"):
        settings, _ = load({"SIDECAR_SPOOL_DIR": str(folder)})
        problem = spool_dir_problem(settings)
        assert problem is not None and problem.startswith("SIDECAR_SPOOL_DIR: "), folder
    assert spool_dir_problem(load({"SIDECAR_SPOOL_DIR": str(tmp_path / "new" / "spool")})[0]) is None
    assert spool_dir_problem(load({"SIDECAR_SPOOL": "memory", "SIDECAR_SPOOL_DIR": str(afile)})[0]) is None


def test_serve_exits_2_on_an_unusable_spool_folder(tmp_path: Path) -> None:
    """`segment-sidecar serve` with SIDECAR_SPOOL_DIR under a file exits 2 naming it, before binding (was exit 1)."""
    afile = tmp_path / "a-file"
    afile.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SIDECAR_SPOOL_DIR": str(afile / "spool"), "SIDECAR_METRICS_LISTEN": "off", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "SIDECAR_SPOOL_DIR" in result.stderr and "Traceback" not in result.stderr


def test_the_loopback_guard_decides_by_address_not_by_spelling() -> None:
    """IP literals decide by their address and names by every address they resolve to: `127.evil.test` is a name
    like any other (here it resolves to nothing, so it is refused), not a loopback address."""
    for listen in ("127.0.0.1:1", "127.1.2.3:1", "[::1]:1", "localhost:1", "unix:/tmp/x.sock"):
        assert listens_on_loopback(listen), listen
    for listen in ("0.0.0.0:1", "[::]:1", "10.0.0.5:1", "127.evil.test:1", "[::ffff:10.0.0.5]:1"):
        assert not listens_on_loopback(listen), listen
    text = refused({"SIDECAR_LISTEN": "127.evil.test:50051"})
    assert "SIDECAR_LISTEN" in text
    assert "SIDECAR_LISTEN" in refused({"SIDECAR_LISTEN": "127.evil.test:50051", "SIDECAR_AUTH_TOKEN": "t"})


def test_a_near_typo_of_a_setting_says_which_one_it_means() -> None:
    """An unknown variable close to a known one names it ("did you mean"); a far one does not."""
    _, warnings = load({"SIDECAR_FLUSH_INTERVALL": "1s", "SIDECAR_SPOOL_MAX_BYTE": "1GiB", "SIDECAR_COLOUR": "x"})
    assert warnings == [
        "SIDECAR_COLOUR is not a setting of this version and is ignored",
        "SIDECAR_FLUSH_INTERVALL is not a setting of this version and is ignored "
        "(did you mean SIDECAR_FLUSH_INTERVAL?)",
        "SIDECAR_SPOOL_MAX_BYTE is not a setting of this version and is ignored "
        "(did you mean SIDECAR_SPOOL_MAX_BYTES?)",
    ]
