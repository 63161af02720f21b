"""How ``SIDECAR_*`` values are written: durations (``500ms``, ``25s``, ``24h``), sizes (``64MiB``) and lists.

The settings (:mod:`sidecar.config`) annotate their fields with :data:`Seconds` and :data:`Bytes`, and the README's
variable table (:mod:`sidecar.config_table`) shows a default in the unit its parser reads.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 10**6, "mib": 2**20, "gb": 10**9, "gib": 2**30}


def parse_duration(value: Any) -> Any:
    """Accept ``25``, ``25s``, ``500ms``, ``5m``, ``24h`` or ``1d``; return seconds as a float."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError("expected a duration such as 500ms, 25s, 5m or 24h")
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    return value


def parse_size(value: Any) -> Any:
    """Accept ``1048576``, ``512MiB``, ``2GiB`` or ``475KB``; return bytes as an int."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError("expected a size such as 475000, 64MiB or 2GiB")
        return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    return value


def parse_list(value: Any) -> Any:
    """A comma-separated list; blanks are dropped."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Bytes = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]
