"""The ``segment-sidecar`` command line: help that tells a newcomer how to configure the sidecar, and subcommands
that read their settings as the sidecar does."""

from __future__ import annotations

import gc
import socket
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.__main__ import COMMANDS, GC_YOUNG_THRESHOLD, main, settle_garbage_collector
from sidecar.config_table import describe
from sidecar.spool.sqlite import SqliteStore


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


def test_serve_help_writes_durations_and_sizes_as_the_readme_does(capsys: pytest.CaptureFixture[str]) -> None:
    """`serve --help` shows 24h and 2GiB, never 86400.0 or 2147483648."""
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "SIDECAR_MAX_EVENT_AGE (default 24h)" in out and "SIDECAR_SPOOL_MAX_BYTES (default 2GiB)" in out
    assert "86400.0" not in out and "2147483648" not in out


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_texts_show_no_markup_backticks(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    """Every command's --help reads as plain text: no reStructuredText ``literals`` or Markdown `code` backticks."""
    try:
        status = main([command, "--help"] if command else ["--help"])
    except SystemExit as exited:  # argparse exits after printing help; some subcommands return instead
        status = exited.code
    assert status == 0
    out = capsys.readouterr().out
    assert out.strip()
    assert "`" not in out, out


def empty_spool(folder: Path) -> Path:
    """A real, empty disk spool in ``folder``."""
    store = SqliteStore(folder)
    store.open()
    store.close()
    return folder


def test_dead_letters_list_says_when_there_are_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty list prints "0 dead letters" as text and `[]` as JSON, rather than nothing."""
    spool = str(empty_spool(tmp_path))
    assert main(["dead-letters", "list", "--spool-dir", spool]) == 0
    assert capsys.readouterr().out == "0 dead letters\n"
    assert main(["dead-letters", "list", "--spool-dir", spool, "--format", "json"]) == 0
    assert capsys.readouterr().out == "[]\n"
    assert main(["dead-letters", "list", "--spool-dir", spool, "--json"]) == 0
    assert capsys.readouterr().out == "[]\n"


def test_dead_letters_reads_the_spool_folder_through_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --spool-dir the command takes SIDECAR_SPOOL_DIR as the sidecar parses it, and an invalid environment
    exits 2 naming the variable, as `serve` does (one parse path, no second copy of the defaults)."""
    monkeypatch.setenv("SIDECAR_SPOOL_DIR", str(empty_spool(tmp_path / "spool")))
    assert main(["dead-letters", "list"]) == 0
    assert capsys.readouterr().out == "0 dead letters\n"
    monkeypatch.setenv("SIDECAR_LISTEN", "unix:")
    with pytest.raises(SystemExit) as exited:
        main(["dead-letters", "list"])
    assert exited.value.code == 2
    assert "SIDECAR_LISTEN" in capsys.readouterr().err


def test_healthcheck_asks_the_address_the_settings_give(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The healthcheck reads SIDECAR_LISTEN through the settings: a closed port is unhealthy (exit 1, naming the
    status), and an address the sidecar itself would refuse exits 2 naming the variable."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SIDECAR_LISTEN", f"0.0.0.0:{port}")
    monkeypatch.setenv("SIDECAR_ALLOW_UNAUTHENTICATED", "true")
    assert main(["healthcheck", "--timeout", "0.5"]) == 1
    assert "unhealthy: UNAVAILABLE" in capsys.readouterr().err
    monkeypatch.setenv("SIDECAR_LISTEN", "unix:")
    with pytest.raises(SystemExit) as exited:
        main(["healthcheck"])
    assert exited.value.code == 2
    assert "SIDECAR_LISTEN" in capsys.readouterr().err


class _Node:
    """A weak-referenceable object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.peer: _Node | None = None


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """The test process's collector settings, put back after a test that changes them."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_settling_the_collector_frees_garbage_then_freezes_what_start_up_left() -> None:
    """What start-up leaves is out of every later collection (no full collection walks it again), but garbage
    start-up made is freed first rather than frozen for good, and the young generation is collected less often."""
    kept = [_Node()]
    first, second = _Node(), _Node()
    first.peer, second.peer = second, first
    garbage = weakref.ref(first)
    del first, second
    _, middle, oldest = gc.get_threshold()

    settle_garbage_collector()

    assert garbage() is None, "a cycle start-up dropped was frozen instead of freed"
    assert gc.get_freeze_count() > 0
    assert not any(tracked is kept for tracked in gc.get_objects()), "start-up's objects are still collected"
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, middle, oldest)
