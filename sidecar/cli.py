"""What every ``segment-sidecar`` command shares: the settings, parsed once from the environment, and plain help.

``serve``, ``healthcheck`` and ``dead-letters`` read their settings (the listen address, the spool folder) through
:func:`settings_or_exit`, so one parse path, one set of defaults and one exit status (2) serve them all.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import structlog

from sidecar.config import Settings, load_with_notes
from sidecar.config_checks import spool_dir_problem
from sidecar.errors import ConfigError
from sidecar.logs import configure

log = structlog.get_logger("sidecar")

EXIT_CONFIG = 2
"""The exit status of a command whose settings are invalid."""


def settings_or_exit(*, serving: bool = False) -> Settings:
    """Parse the environment or exit 2 naming every bad variable, before anything is bound.

    ``serving`` (the ``serve`` command) also checks that the spool folder is usable, configures logging and logs the
    warnings; the other commands only read the settings and stay quiet about them (a healthcheck runs every few
    seconds)."""
    try:
        settings, warnings = load_with_notes(os.environ)
    except ConfigError as error:
        _exit_config(error)
    problem = spool_dir_problem(settings) if serving else None
    if problem is not None:
        _exit_config(ConfigError([problem]))
    if not serving:
        return settings
    configure(settings.log_level, settings.log_format)
    for event, warning in warnings:
        log.warning(event, detail=warning)
    if settings.integration_name == Settings.model_fields["integration_name"].default:
        log.warning("default_integration_name", detail="set SIDECAR_INTEGRATION_NAME to the slug Segment gave you")
    return settings


def _exit_config(error: ConfigError) -> NoReturn:
    print(f"segment-sidecar: {error}", file=sys.stderr)
    raise SystemExit(EXIT_CONFIG) from None


def plain(text: str) -> str:
    """Help text without reStructuredText or Markdown markup: a terminal shows backticks literally."""
    return text.replace("``", "").replace("`", "")
