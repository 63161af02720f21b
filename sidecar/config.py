"""The sidecar's configuration: one frozen object parsed once, at start-up, from ``SIDECAR_*`` variables.

Nothing else in the package reads ``os.environ``: the ``serve``, ``healthcheck`` and ``dead-letters`` commands all
parse it here. :func:`load` reports *every* bad variable by its name (never its value: a URL may hold a password) and
raises :class:`~sidecar.errors.ConfigError`, which the entrypoint turns into exit status 2 before any port is bound.
Each field is checked alone, then the settings as a whole (:mod:`sidecar.config_checks`: the mode's combinations,
bounds that depend on each other, the beyond-loopback guard). Unknown ``SIDECAR_*`` variables only produce warnings,
since deployments may set variables meant for a newer version; a near typo of a known name says which one it means.

``SIDECAR_MODE`` says what the process is: ``standalone`` (the default: delivers to Segment itself), ``edge``
(forwards to gateways, ``SIDECAR_FORWARD_TO``) or ``gateway`` (receives from edges, ``SIDECAR_AUTH_TOKEN``).
``SIDECAR_REDIS_URL`` makes a standalone sidecar or a gateway a fleet member sharing the cap. An unset mode with
``SIDECAR_FORWARD_TO`` set runs as an edge, with a warning asking for ``SIDECAR_MODE=edge``.

The README's variable tables are generated from the field descriptions and :data:`GROUPS` below
(``python -m sidecar config-table``), so the two cannot drift. No setting exists for tests alone: tests shorten
internal intervals (health probe, dead-letter pruning, the fleet's Redis probe) through constructor arguments and
attributes, never through the environment.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sidecar.config_checks import (
    listen_addresses,
    listens_on_loopback,
    mode_problems,
    origin_problem,
    settings_problems,
)
from sidecar.config_values import Bytes, Seconds, parse_list
from sidecar.errors import ConfigError
from sidecar.model import Region

ENV_PREFIX = "SIDECAR_"

# Segment's limits, each written once (see shared/reference/segment-http-api.md, section 4).
SEGMENT_MAX_EVENT_BYTES = 32 * 1024
SEGMENT_MAX_BATCH_BYTES = 500 * 1000
SEGMENT_MAX_BATCH_EVENTS = 2500
SEGMENT_MAX_MESSAGE_ID_CHARS = 99
PARTNER_MAX_REQUESTS_PER_SECOND = 50.0
DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"  # Prometheus' registered exporter port range; loopback only
DEFAULT_BATCH_BYTES = 475_000  # headroom under 500 KB for sentAt and rounding, as Segment's own SDKs keep
MAX_INTEGRATION_VERSION_CHARS = 64
"""``context.integration.version`` rides on every event, inside Segment's 32 KB per event: a version string (semver
with a pre-release and build tag fits in 40) has no reason to take more of that room."""

Mode = Literal["standalone", "edge", "gateway"]
"""What a sidecar is (``SIDECAR_MODE``); :mod:`sidecar.config_checks` holds what each needs and refuses."""

US_ENDPOINT = "https://api.segment.io"
EU_ENDPOINT = "https://events.eu1.segmentapis.com"
US_OAUTH_ENDPOINT = "https://oauth2.segment.io"
EU_OAUTH_ENDPOINT = "https://oauth2.eu1.segmentapis.com"

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class Settings(BaseSettings):
    """Every setting of the sidecar; each field is the variable ``SIDECAR_<FIELD NAME IN CAPITALS>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    # --- what the process is
    mode: Mode = Field(
        "standalone",
        description="What this sidecar is: `standalone` delivers to Segment itself (with `SIDECAR_REDIS_URL`, as one "
        "of a fleet sharing the cap); `edge` forwards to gateways (`SIDECAR_FORWARD_TO`); `gateway` receives from "
        "edges and delivers (`SIDECAR_AUTH_TOKEN` required). Unset with `SIDECAR_FORWARD_TO` set: `edge`, with a "
        "warning.",
    )

    # --- the gRPC API
    listen: str = Field("127.0.0.1:50051", description="gRPC listen address: `host:port`, or `unix:/path/to.sock`.")
    http_listen: str | None = Field(
        None,
        description="`host:port` of Segment's HTTP Tracking API served locally (`/v1/batch`...), for Segment's own "
        "libraries; off when unset.",
    )
    integration_name: str = Field(
        "segment-sidecar",
        description="Your tool's slug as Segment knows it; sent as `context.integration.name` on every event.",
    )
    integration_version: str = Field(
        "1.0.0",
        description=f"Sent as `context.integration.version`: at most {MAX_INTEGRATION_VERSION_CHARS} printable "
        "characters.",
    )
    default_region: Region = Field(
        Region.US, description="Region for calls that leave `region` unspecified: `us` or `eu`."
    )
    max_concurrent_calls: int = Field(
        256,
        ge=1,
        le=65536,
        description="Calls in progress at once, gRPC calls and HTTP-intake requests counted together; past it a call "
        "gets RESOURCE_EXHAUSTED (HTTP: 429) with a retry delay.",
    )
    max_outcome_watches: int = Field(
        256,
        ge=1,
        le=4096,
        description="`WatchOutcomes` streams open at once, counted apart from `SIDECAR_MAX_CONCURRENT_CALLS` (a watch "
        "lasts, a call does not); past it a new watch gets RESOURCE_EXHAUSTED with a retry delay.",
    )

    # --- Segment
    endpoint_us: str = Field(US_ENDPOINT, description="Origin of Segment's US Tracking API.")
    endpoint_eu: str = Field(EU_ENDPOINT, description="Origin of Segment's EU Tracking API.")
    max_requests_per_second: float = Field(
        PARTNER_MAX_REQUESTS_PER_SECOND,
        gt=0,
        le=1000,
        description="Cap on HTTP requests to Segment in any one-second window, retries included, all keys together.",
    )
    request_timeout: Seconds = Field(10.0, description="Time limit of one HTTP attempt.")
    max_in_flight: int = Field(64, ge=1, le=1024, description="HTTP requests to Segment in flight at once.")

    # --- batching
    flush_interval: Seconds = Field(1.0, description="How long the oldest event of a batch may wait before it is sent.")
    batch_max_bytes: Bytes = Field(
        DEFAULT_BATCH_BYTES, le=SEGMENT_MAX_BATCH_BYTES, description="Byte limit of one batch request body."
    )
    batch_max_events: int = Field(
        SEGMENT_MAX_BATCH_EVENTS, ge=1, le=SEGMENT_MAX_BATCH_EVENTS, description="Event limit of one batch."
    )

    # --- the spool
    spool: Literal["disk", "memory"] = Field(
        "disk", description="`disk` acknowledges after an fsync'd write; `memory` acknowledges from memory."
    )
    spool_dir: Path = Field(Path("segment-sidecar-spool"), description="Folder of the disk spool and dead letters.")
    spool_max_bytes: Bytes = Field(
        2 * 2**30,
        description="Bound on the disk spool's files (events with their keys and indexes, dead letters, WAL), or on "
        "the memory spool's payload bytes; past it calls get RESOURCE_EXHAUSTED.",
    )
    spool_dead_letter_max_bytes: Bytes = Field(
        256 * 2**20,
        description="Bound on dead letters (payloads, ids, reasons, answers), at most a quarter of "
        "`SIDECAR_SPOOL_MAX_BYTES`; past it the oldest are pruned, logged and counted.",
    )
    spool_dead_letter_max_age: Seconds = Field(
        7 * 86400.0, description="Dead letters older than this are pruned, logged and counted."
    )
    outcomes_max_age: Seconds = Field(
        86400.0, description="`WatchOutcomes` records older than this are pruned (a cursor before them: OUT_OF_RANGE)."
    )
    outcomes_max_bytes: Bytes = Field(
        64 * 2**20, description="Bound on the outcome log on disk; past it the oldest records are pruned."
    )

    # --- retries and giving up
    retry_base_delay: Seconds = Field(0.5, description="First retry backoff; doubles per attempt, with full jitter.")
    retry_max_delay: Seconds = Field(60.0, description="Largest retry backoff.")
    max_event_age: Seconds = Field(
        86400.0, description="An event not delivered this long after acceptance is dead-lettered."
    )
    parked_retry_interval: Seconds = Field(300.0, description="How often a parked (401/403) write key is retried.")
    parked_dead_letter_after: Seconds = Field(
        86400.0, description="A key parked this long has its events dead-lettered."
    )
    shutdown_grace: Seconds = Field(25.0, description="On SIGTERM, time allowed to flush before exiting.")

    # --- Spec conformance
    spec_mode: Literal["strict", "warn", "off"] = Field(
        "strict", description="`strict` rejects near-miss Spec event names; `warn` forwards with warnings; `off`."
    )
    spec_allow: Annotated[tuple[str, ...], NoDecode, BeforeValidator(parse_list)] = Field(
        (), description="Comma-separated custom event names never flagged by the Spec check."
    )

    # --- operations
    metrics_listen: str | None = Field(
        DEFAULT_METRICS_LISTEN,
        description="`host:port` of the Prometheus `/metrics` endpoint (loopback by default), or `off`.",
    )
    debugger_listen: str | None = Field(None, description="`host:port` of the live debugger page; off when unset.")
    debugger_hosts: Annotated[tuple[str, ...], NoDecode, BeforeValidator(parse_list)] = Field(
        (),
        description="Comma-separated Host names the debugger page answers besides loopback ones (DNS rebinding guard).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest log level written.")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="`json`, `console`, or `auto` (console on a terminal, JSON otherwise)."
    )

    # --- fleet rate limit
    redis_url: str | None = Field(
        None, description="Redis URL of the fleet-wide rate budget (`redis://` or `rediss://`)."
    )
    redis_key: str | None = Field(
        None, description="Redis key of the budget; default derived from the integration name."
    )
    fleet_size: int = Field(
        1, ge=1, description="Sidecars sharing the cap; the fallback rate when Redis is down is cap / this."
    )

    # --- OAuth
    oauth_credentials_file: Path | None = Field(
        None, description="JSON or YAML file of OAuth credentials per write key."
    )
    oauth_required: bool = Field(False, description="Refuse calls for write keys without OAuth credentials.")
    oauth_endpoint_us: str = Field(US_OAUTH_ENDPOINT, description="Origin of Segment's US OAuth authorization server.")
    oauth_endpoint_eu: str = Field(EU_OAUTH_ENDPOINT, description="Origin of Segment's EU OAuth authorization server.")

    # --- two tiers: authentication, and edges forwarding to gateways (docs/fleet.md)
    auth_token: SecretStr | None = Field(
        None,
        description="Every RPC must carry `authorization: Bearer <token>` (health stays open to loopback callers).",
    )
    allow_unauthenticated: bool = Field(
        False, description="Allow listening beyond loopback without `SIDECAR_AUTH_TOKEN` (refused otherwise)."
    )
    forward_to: Annotated[tuple[str, ...], NoDecode, BeforeValidator(parse_list)] = Field(
        (),
        description="Edge mode: gateways to forward to instead of Segment, `host:port,...` or `dns:///name:port`.",
    )
    forward_token: SecretStr | None = Field(
        None, description="Edge mode: the bearer token sent to the gateways (their `SIDECAR_AUTH_TOKEN`)."
    )
    forward_resolve_interval: Seconds = Field(
        10.0, description="Edge mode: how often a `dns:///` gateway name is resolved again."
    )
    forward_failover_after: Seconds = Field(
        10.0, description="Edge mode: a gateway failing this long hands its keys to the next gateway in their order."
    )

    @model_validator(mode="before")
    @classmethod
    def _infer_mode(cls, data: Any) -> Any:
        """An unset mode with gateways to forward to is an edge (what these settings meant before the mode existed);
        a blank SIDECAR_FORWARD_TO is unset, as :func:`_raw_mode` reads it when another variable failed."""
        if not isinstance(data, dict) or data.get("mode") not in (None, ""):
            return data
        forward_to = data.get("forward_to")
        if forward_to.strip() if isinstance(forward_to, str) else forward_to:
            return {**data, "mode": "edge"}
        return data

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("integration_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not value.strip() or len(value) > MAX_INTEGRATION_VERSION_CHARS or not value.isprintable():
            raise ValueError(
                f"expected a version such as 1.0.0: 1 to {MAX_INTEGRATION_VERSION_CHARS} printable characters "
                "(it is sent on every event, inside Segment's 32 KB limit)"
            )
        return value

    @field_validator("integration_name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("must be a slug: lower-case letters, digits and single hyphens, such as `my-email-tool`")
        return value

    @field_validator("http_listen", "metrics_listen", "debugger_listen", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        """``off`` (or an empty value) turns an operations endpoint off."""
        if isinstance(value, str) and value.strip().lower() in {"off", ""}:
            return None
        return value

    @field_validator("listen", "http_listen", "metrics_listen", "debugger_listen")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("unix:"):
            if not value.removeprefix("unix:").strip():
                raise ValueError("unix: needs a socket path, such as unix:/run/segment-sidecar.sock")
            return value
        if value is None:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("expected host:port (such as 127.0.0.1:50051) or unix:/path")
        return value

    @field_validator("endpoint_us", "endpoint_eu", "oauth_endpoint_us", "oauth_endpoint_eu")
    @classmethod
    def _origin(cls, value: str) -> str:
        problem = origin_problem(value)
        if problem is not None:
            raise ValueError(f"expected an origin such as https://api.segment.io: {problem}")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("auth_token", "forward_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        text = None if value is None else value.get_secret_value()
        if text is not None and (not text or text.strip() != text):
            raise ValueError("must be a non-empty token without surrounding spaces")
        return value

    @field_validator("forward_to")
    @classmethod
    def _gateways(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            host, sep, port = item.removeprefix("dns:///").rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
                raise ValueError("expected host:port entries (10.0.0.7:50051) or dns:///name:port, comma-separated")
        return value

    def endpoint(self, region: Region) -> str:
        """The Tracking API origin of a region."""
        return self.endpoint_us if region is Region.US else self.endpoint_eu

    def oauth_endpoint(self, region: Region) -> str:
        """The OAuth authorization server origin of a region."""
        return self.oauth_endpoint_us if region is Region.US else self.oauth_endpoint_eu


def variable_name(field: str) -> str:
    """The environment variable behind a settings field."""
    return ENV_PREFIX + field.upper()


def _unknown(key: str, known: set[str]) -> str:
    """The warning about an unknown ``SIDECAR_*`` variable, naming a known one it is a near typo of."""
    names = {name.removeprefix(ENV_PREFIX): name for name in known}
    close = difflib.get_close_matches(key.removeprefix(ENV_PREFIX), list(names), n=1, cutoff=0.8)
    hint = f" (did you mean {names[close[0]]}?)" if close else ""
    return f"{key} is not a setting of this version and is ignored{hint}"


def load(environ: Mapping[str, str]) -> tuple[Settings, list[str]]:
    """Parse settings from ``environ``; return them with warnings (unknown ``SIDECAR_*`` variables, an inferred mode,
    a bound taken lower than its default). Raises :class:`ConfigError` naming every invalid variable, and every
    combination the settings refuse as a whole."""
    settings, notes = load_with_notes(environ)
    return settings, [text for _, text in notes]


def load_with_notes(environ: Mapping[str, str]) -> tuple[Settings, list[tuple[str, str]]]:
    """:func:`load`, with each warning as (log event, text): ``unknown_setting`` for a variable this version does not
    know, ``setting_warning`` for the others."""
    known = {variable_name(name) for name in Settings.model_fields}
    ours = {key.upper(): value for key, value in environ.items() if key.upper().startswith(ENV_PREFIX)}
    notes = [("unknown_setting", _unknown(key, known)) for key in sorted(set(ours) - known)]
    values = {key[len(ENV_PREFIX) :].lower(): value for key, value in ours.items() if key in known}
    problems: list[str] = []
    warnings: list[str] = []
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(values)  # values only: model_validate does not read os.environ
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{variable_name(field)}: {message}")
    mode = settings.mode if settings is not None else _raw_mode(values)
    found, noted = mode_problems(mode, values)
    problems += found
    warnings += noted
    if settings is not None:
        resolves = settings.listen.startswith("unix:") or bool(listen_addresses(settings.listen))
        found, noted = settings_problems(
            settings, values, SEGMENT_MAX_EVENT_BYTES, listens_on_loopback(settings.listen), resolves
        )
        problems += found
        warnings += noted
        if (
            settings.http_listen is not None
            and not listens_on_loopback(settings.http_listen)
            and settings.auth_token is None
            and not settings.allow_unauthenticated
        ):
            problems.append(
                f"SIDECAR_HTTP_LISTEN: {settings.http_listen} is reachable beyond this machine, and "
                "SIDECAR_AUTH_TOKEN is unset: set SIDECAR_AUTH_TOKEN (callers send it in the X-Sidecar-Token "
                "header), listen on loopback, or set SIDECAR_ALLOW_UNAUTHENTICATED=true"
            )
    if problems or settings is None:
        raise ConfigError(problems)
    return settings, notes + [("setting_warning", text) for text in warnings]


def _raw_mode(values: Mapping[str, str]) -> str:
    """The mode the variables ask for, for the combination checks when another field failed to parse."""
    mode = values.get("mode", "").strip().lower()
    return mode or ("edge" if values.get("forward_to", "").strip() else "standalone")


__all__ = [
    "ENV_PREFIX",
    "Mode",
    "Settings",
    "listens_on_loopback",
    "load",
    "load_with_notes",
    "origin_problem",
    "variable_name",
]
