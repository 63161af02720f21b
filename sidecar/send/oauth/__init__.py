"""OAuth for the Tracking API: per write key, a Bearer token from Segment's regional authorization server.

Keys listed in ``SIDECAR_OAUTH_CREDENTIALS_FILE`` send ``Authorization: Bearer <token>`` with ``writeKey`` in the
body; every other key keeps Basic auth (or, with ``SIDECAR_OAUTH_REQUIRED``, is refused at the gRPC edge). A key with
credentials never falls back to Basic, not even while its first token is being fetched.

The credentials file is a JSON (or YAML) object mapping a raw write key, or its :func:`~sidecar.model.write_key_hash`,
to the source's OAuth app::

    {"<write key>": {"client_id": "...", "key_id": "...", "region": "US",
                     "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE...\\n-----END PRIVATE KEY-----\\n"}}

It is validated as a whole at start-up (:class:`~sidecar.errors.ConfigError` naming every bad entry by its position
and write key hash, never quoting a value) and polled for changes; a changed file that is invalid is logged and the
previous credentials stay in use.

The life of a token, per (write key, region):

* the first :meth:`OAuthAuthenticator.authorize` requests one and waits for it (bounded by the request timeout);
  concurrent callers share that one request (single-flight);
* it is reused until ``expires_in`` minus min(60 s, 20 %), then renewed in the background while still valid;
* a 401 from the Tracking API invalidates it (:meth:`OAuthAuthenticator.rejected`) and the batch is retried once;
* a token server that fails (5xx, 408, 429, network) makes ``authorize`` raise a retryable
  :class:`~sidecar.send.http.AuthorizationFailed` for that key alone, with backoff between token requests; one
  that refuses the credentials (any other status: a revoked app) raises an ``Unauthorized`` one, which parks the key.

Each token request signs a fresh RS256 assertion: header ``kid``; claims ``iss`` = ``sub`` = client id, ``aud`` = the
token URL used, ``iat``, ``exp`` a minute later and a new ``jti``. Tokens, assertions and keys never reach a log:
events (``oauth_token_fetched``, ``oauth_token_failed``...) name the key by its hash only.

The package: :mod:`._credentials` (the file, validated by a pydantic model), :mod:`._tokens` (the assertion and the
token server's answer, pure) and :mod:`._authenticator` (the I/O: fetches, renewal, reloads).
"""

from __future__ import annotations

from sidecar.send.oauth._authenticator import RELOAD_INTERVAL, OAuthAuthenticator
from sidecar.send.oauth._credentials import (
    FILE_VARIABLE,
    MIN_RSA_BITS,
    OAuthCredentials,
    load_credentials,
    parse_credentials,
)
from sidecar.send.oauth._tokens import (
    ASSERTION_LIFETIME,
    ASSERTION_TYPE,
    GRANT_TYPE,
    REFRESH_MARGIN_MAX,
    REFRESH_MARGIN_SHARE,
    SCOPE,
    TokenGrant,
    classify_token_response,
    refresh_margin,
    sign_assertion,
    token_form,
)

__all__ = [
    "ASSERTION_LIFETIME",
    "ASSERTION_TYPE",
    "FILE_VARIABLE",
    "GRANT_TYPE",
    "MIN_RSA_BITS",
    "REFRESH_MARGIN_MAX",
    "REFRESH_MARGIN_SHARE",
    "RELOAD_INTERVAL",
    "SCOPE",
    "OAuthAuthenticator",
    "OAuthCredentials",
    "TokenGrant",
    "classify_token_response",
    "load_credentials",
    "parse_credentials",
    "refresh_margin",
    "sign_assertion",
    "token_form",
]
