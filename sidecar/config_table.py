"""The README's variable tables, generated from :class:`~sidecar.config.Settings`' field descriptions.

``segment-sidecar config-table`` prints them, ``serve --help`` lists them, and a test compares the README with them,
so the documentation cannot drift from the code. Defaults are written as a person writes the variable (``24h``,
``2GiB``, ``false``), in the README's own units.
"""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator

from sidecar.config import Settings, variable_name
from sidecar.config_values import parse_duration, parse_size
from sidecar.model import Region

GROUPS: dict[str, str] = {
    "mode": "What the process is",
    "listen": "The gRPC API",
    "endpoint_us": "Segment (change the endpoints only for the local collector, a test or a proxy)",
    "flush_interval": "Batching",
    "spool": "The spool",
    "retry_base_delay": "Retries and giving up",
    "spec_mode": "Spec conformance",
    "metrics_listen": "Operations",
    "redis_url": "A fleet sharing the cap (standalone or gateway)",
    "oauth_credentials_file": "OAuth (change the endpoints only for a test or a proxy)",
    "auth_token": "Authentication",
    "forward_to": "Edge (SIDECAR_MODE=edge)",
}
"""The README's sections of the variable table, by the first field of each: a section holds the fields declared from
its first one up to the next section's (so a field added beside its neighbours joins their section)."""


def format_duration(seconds: float) -> str:
    """A duration as the README writes it: ``500ms``, ``25s``, ``5m``, ``24h``, ``7d``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        # Days only from two on: a day reads as 24h in the README.
        if seconds % size == 0 and seconds >= (2 * size if unit == "d" else size):
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def format_size(size: int) -> str:
    """A size as the README writes it: ``2GiB``, ``256MiB``, ``64KiB``, else plain bytes (``475000``)."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size % factor == 0 and size >= factor:
            return f"{size // factor}{unit}"
    return str(size)


def _shown(name: str, default: Any) -> str:
    """A field's default as a person writes the variable."""
    metadata = Settings.model_fields[name].metadata
    parsers = {item.func for item in metadata if isinstance(item, BeforeValidator)}
    if default is None:
        return "unset"
    if isinstance(default, Region):
        return default.value
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, tuple):
        return ",".join(default) or "empty"
    if parse_duration in parsers:
        return format_duration(float(default))
    if parse_size in parsers:
        return format_size(int(default))
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting, in declaration order, for the README's table."""
    return [
        (variable_name(name), _shown(name, field.default), field.description or "")
        for name, field in Settings.model_fields.items()
    ]


def describe_groups() -> list[tuple[str, list[tuple[str, str, str]]]]:
    """:func:`describe`'s rows in the README's sections (:data:`GROUPS`), in declaration order."""
    groups: list[tuple[str, list[tuple[str, str, str]]]] = []
    for name, row in zip(Settings.model_fields, describe(), strict=True):
        if name in GROUPS or not groups:
            groups.append((GROUPS.get(name, "Settings"), []))
        groups[-1][1].append(row)
    return groups


def markdown() -> str:
    """Every section's table in Markdown, as the README holds it between its ``config-table`` markers."""
    parts = []
    for title, rows in describe_groups():
        lines = [f"**{title}**", "", "| Variable | Default | Meaning |", "| --- | --- | --- |"]
        lines += [f"| `{name}` | `{default}` | {meaning} |" for name, default, meaning in rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
