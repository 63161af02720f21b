"""The settings checked as a whole: the mode's combinations, bounds that depend on each other, the listen guard.

:func:`sidecar.config.load` runs these after (and beside) the per-field checks, so that one start reports every
problem, each by its variable name, and exits 2 before anything is bound.

What each mode needs and refuses (a variable counts as set when it has a non-blank value):

==============  ============================  =====================================================================
mode            needs                         refuses
==============  ============================  =====================================================================
``standalone``  nothing                       ``SIDECAR_FORWARD_*`` (only an edge forwards)
``edge``        ``SIDECAR_FORWARD_TO``        ``SIDECAR_REDIS_URL``, ``SIDECAR_REDIS_KEY``, ``SIDECAR_FLEET_SIZE``
                                              (an edge never calls Segment: the gateways share the cap)
``gateway``     ``SIDECAR_AUTH_TOKEN``        ``SIDECAR_FORWARD_*`` (a gateway delivers; it does not forward)
==============  ============================  =====================================================================

In every mode ``SIDECAR_REDIS_KEY`` and ``SIDECAR_FLEET_SIZE`` need ``SIDECAR_REDIS_URL`` (they describe the shared
budget). An edge given ``SIDECAR_MAX_REQUESTS_PER_SECOND`` is warned that the value is unused.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from sidecar.config import Settings

MIN_DISK_SPOOL_BYTES = 320 * 1024
"""The smallest ``SIDECAR_SPOOL_MAX_BYTES`` for a disk spool. A fresh SQLite spool takes 196 KiB before its first
event (68 KiB of tables and indexes, plus the 128 KiB its smallest write-ahead log may grow to between checkpoints),
and one largest event (32 KiB) counts twice until measured (log and table): below this, no event could ever be
accepted. ``tests/unit/test_config.py`` opens a real spool to keep the figure honest."""

_FORWARD = ("FORWARD_TO", "FORWARD_TOKEN", "FORWARD_RESOLVE_INTERVAL", "FORWARD_FAILOVER_AFTER")
_SHARED_BUDGET = ("REDIS_KEY", "FLEET_SIZE")


def mode_problems(mode: str, given: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Problems and warnings of a mode (already lower-cased, inferred when unset) with the variables ``given``
    (field name -> raw value, as the environment holds them); see the module's table."""
    present = {name for name, value in given.items() if value.strip()}
    problems: list[str] = []
    warnings: list[str] = []

    def refuse(names: tuple[str, ...], why: str) -> None:
        problems.extend(f"SIDECAR_{name}: {why}" for name in names if name.lower() in present)

    if mode == "edge":
        if "forward_to" not in present:
            problems.append("SIDECAR_FORWARD_TO: SIDECAR_MODE=edge needs the gateways to forward to (host:port,...)")
        refuse(
            ("REDIS_URL", *_SHARED_BUDGET),
            "an edge never calls Segment, so it takes no part in the shared cap: set it on the gateways",
        )
        if "max_requests_per_second" in present:
            warnings.append("SIDECAR_MAX_REQUESTS_PER_SECOND is unused on an edge: the gateways pace Segment's cap")
        if not given.get("mode", "").strip():
            warnings.append(
                "SIDECAR_MODE is unset: running as an edge because SIDECAR_FORWARD_TO is set; set SIDECAR_MODE=edge"
            )
    elif mode in ("standalone", "gateway"):
        if mode == "gateway" and "auth_token" not in present:
            problems.append(
                "SIDECAR_AUTH_TOKEN: SIDECAR_MODE=gateway needs the token its edges send (their SIDECAR_FORWARD_TOKEN)"
            )
        refuse(_FORWARD, f"only an edge forwards (SIDECAR_MODE is {mode}): set SIDECAR_MODE=edge, or remove it")
    if mode != "edge" and "redis_url" not in present:
        refuse(_SHARED_BUDGET, "describes the budget shared through Redis, and SIDECAR_REDIS_URL is unset")
    return problems, warnings


def settings_problems(
    settings: Settings, given: Mapping[str, str], largest_event: int, on_loopback: bool, resolves: bool
) -> tuple[list[str], list[str]]:
    """Problems and warnings found in parsed settings whose values depend on each other.

    ``largest_event``: Segment's per-event limit; ``on_loopback``/``resolves``: what the listen address resolved to.
    """
    problems: list[str] = []
    warnings: list[str] = []
    if settings.spool == "disk" and settings.spool_max_bytes < MIN_DISK_SPOOL_BYTES:
        problems.append(
            f"SIDECAR_SPOOL_MAX_BYTES: at least {MIN_DISK_SPOOL_BYTES} (320KiB) for a disk spool: an empty spool "
            "takes 196 KiB, and one largest event must fit"
        )
    if settings.spool == "memory" and settings.spool_max_bytes < largest_event:
        problems.append(f"SIDECAR_SPOOL_MAX_BYTES: at least {largest_event} (one largest event) for a memory spool")
    quarter = settings.spool_max_bytes // 4
    if settings.spool_dead_letter_max_bytes > quarter:
        if given.get("spool_dead_letter_max_bytes", "").strip():
            problems.append(
                f"SIDECAR_SPOOL_DEAD_LETTER_MAX_BYTES: at most a quarter of SIDECAR_SPOOL_MAX_BYTES ({quarter} bytes), "
                "so that dead letters never crowd out events waiting for delivery"
            )
        else:
            warnings.append(
                f"SIDECAR_SPOOL_DEAD_LETTER_MAX_BYTES is {quarter} bytes, a quarter of SIDECAR_SPOOL_MAX_BYTES "
                "(its default is larger than that)"
            )
    if not resolves:
        host = settings.listen.rpartition(":")[0]
        problems.append(f"SIDECAR_LISTEN: the host {host} resolves to no address")
    elif not on_loopback and settings.auth_token is None and not settings.allow_unauthenticated:
        problems.append(
            f"SIDECAR_LISTEN: {settings.listen} is reachable beyond this machine, and SIDECAR_AUTH_TOKEN is unset: "
            "set SIDECAR_AUTH_TOKEN (callers send it as `authorization: Bearer <token>`), listen on loopback, "
            "or set SIDECAR_ALLOW_UNAUTHENTICATED=true"
        )
    return problems, warnings


def spool_dir_problem(settings: Settings) -> str | None:
    """Why the disk spool's folder cannot be used (a file, or a folder that cannot be created or written), or None.

    Checked without creating anything: the folder, or its nearest existing parent, must be a writable folder.
    """
    if settings.spool != "disk":
        return None
    folder = Path(settings.spool_dir)
    name = "SIDECAR_SPOOL_DIR"
    if folder.exists():
        if not folder.is_dir():
            return f"{name}: {folder} is not a folder"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"{name}: {folder} is not writable by this user"
        return None
    parent = folder.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{name}: {folder} cannot be created: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{name}: {folder} cannot be created: {parent} is not writable by this user"
    return None


def origin_problem(value: str) -> str | None:
    """What keeps ``value`` from being an ``http(s)://host[:port]`` origin, or None."""
    text = value.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return "its port must be a number from 0 to 65535"
    if parts.scheme not in ("http", "https") or any(char.isspace() for char in text):
        return "http:// or https:// and a host, no spaces"
    if "@" in parts.netloc:
        return "no user or password (write keys go in each request; proxies take their own settings)"
    if not parts.hostname:
        return "no host"
    if parts.path or "?" in text or "#" in text:
        return "no path, query or fragment"
    return None


ListenAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
"""An address a listener binds."""


def listen_addresses(listen: str) -> list[ListenAddress]:
    """The addresses a ``host:port`` listen address binds: an IP literal itself, a name every address it resolves to
    (a server binds them all); none when the name does not resolve. A ``unix:`` path has no address (``[]``)."""
    if listen.startswith("unix:"):
        return []
    host = listen.rpartition(":")[0].strip("[]")
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]


def listens_on_loopback(listen: str) -> bool:
    """Whether a ``host:port`` (or ``unix:`` path) listen address is reachable only from this machine: decided by
    the addresses it binds (an IP literal, or every address a name resolves to), never by how a name is spelled
    (``127.example.test`` is a name like any other). A name that resolves to nothing is not loopback."""
    if listen.startswith("unix:"):
        return True
    addresses = listen_addresses(listen)
    return bool(addresses) and all(address.is_loopback for address in addresses)
