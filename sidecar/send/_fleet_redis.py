"""The fleet limiter's Redis connection: the budget's default key, the URL as logs may show it, and the client."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

DEFAULT_KEY_PREFIX: Final = "segment-sidecar:ratelimit:"
"""The default Redis key is this prefix and the integration name: one budget per partner, shared by its sidecars."""


def default_key(integration_name: str) -> str:
    """The Redis key of a partner's budget: derived from nothing host-specific, so its sidecars share it."""
    return DEFAULT_KEY_PREFIX + integration_name


def redact_url(url: str) -> str:
    """The URL without its credentials or query (which may carry a password), fit for a log line."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable redis url>"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    if parts.username or parts.password:
        netloc = "***@" + netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def client(url: str, connect_timeout: float) -> redis.Redis:
    """A client for ``url`` (``redis://`` or ``rediss://``, TLS options as query parameters) that connects lazily,
    bounds connecting and every socket operation by ``connect_timeout``, and never retries on its own (the limiter
    decides what a failure means)."""
    connection: redis.Redis = redis.from_url(  # type: ignore[no-untyped-call]
        url,
        socket_timeout=connect_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),
    )
    return connection
