"""The token request: the signed client assertion, the form, and what the authorization server's answer means.

Pure functions, tested without a network; :mod:`._authenticator` does the I/O.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import jwt
import orjson

from sidecar.send.classify import Retry, Unauthorized, server_delay
from sidecar.send.oauth._credentials import OAuthCredentials

SCOPE = "tracking_api:write"
GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60
"""Seconds an assertion is valid: it is used once, right after it is signed."""
REFRESH_MARGIN_MAX = 60.0
REFRESH_MARGIN_SHARE = 0.2
"""A token is renewed min(60 s, 20 % of its lifetime) before it expires."""


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A token the authorization server issued, valid ``expires_in`` seconds."""

    access_token: str = field(repr=False)
    expires_in: float


def sign_assertion(credentials: OAuthCredentials, audience: str, now: float) -> str:
    """A client assertion for one token request to ``audience`` (the token URL): RS256, ``kid``, a new ``jti``."""
    issued = int(now)
    claims = {
        "iss": credentials.client_id,
        "sub": credentials.client_id,
        "aud": audience,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, credentials.private_key, algorithm="RS256", headers={"kid": credentials.key_id})


def token_form(assertion: str) -> dict[str, str]:
    """The form-encoded body of a token request."""
    return {
        "grant_type": GRANT_TYPE,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        "scope": SCOPE,
    }


def classify_token_response(
    status: int, headers: Mapping[str, str], body: str, now: float
) -> TokenGrant | Retry | Unauthorized:
    """What an authorization server's answer means: a token, try again later, or the credentials are refused.

    5xx, 408 and 429 (and a 2xx without a usable token) are retried; any other status refuses the credentials. The
    reason quotes only the OAuth ``error`` and ``error_description`` fields, never the body.
    """
    if 200 <= status < 300:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        token = data.get("access_token") if isinstance(data, dict) else None
        expires_in = data.get("expires_in") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            return Retry(f"HTTP {status} without an access_token", None, status)
        seconds = float(expires_in) if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) else 0.0
        if not (math.isfinite(seconds) and seconds > 0):
            return Retry(f"HTTP {status} without a positive expires_in", None, status)
        return TokenGrant(token, seconds)
    detail = f"HTTP {status}"
    with contextlib.suppress(orjson.JSONDecodeError):
        data = orjson.loads(body)
        if isinstance(data, dict):
            parts = [str(data[name])[:200] for name in ("error", "error_description") if data.get(name)]
            detail += (" " + ": ".join(parts)) if parts else ""
    if status in (408, 429) or status >= 500:
        return Retry(detail, server_delay(headers, now), status)
    return Unauthorized(detail, status)


def refresh_margin(expires_in: float) -> float:
    """How long before expiry a token is renewed: min(60 s, 20 % of its lifetime)."""
    return min(REFRESH_MARGIN_MAX, REFRESH_MARGIN_SHARE * expires_in)
