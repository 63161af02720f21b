"""The OAuth authenticator: the credentials file, token requests against a real local token server, the token cache."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from structlog.testing import capture_logs

from sidecar.backoff import Backoff
from sidecar.collector.server import Collector
from sidecar.collector.token_server import TokenServer, oauth_collector
from sidecar.config import load
from sidecar.errors import ConfigError
from sidecar.model import Region, write_key_hash
from sidecar.send.auth import Authorization
from sidecar.send.classify import Retry, Unauthorized
from sidecar.send.http import AuthorizationFailed
from sidecar.send.oauth import (
    ASSERTION_LIFETIME,
    OAuthAuthenticator,
    OAuthCredentials,
    TokenGrant,
    classify_token_response,
    load_credentials,
    parse_credentials,
    refresh_margin,
    sign_assertion,
    token_form,
)

KEY_A = "wk-oauth-a"
KEY_B = "wk-oauth-b"
KEY_BASIC = "wk-basic"


def pem(key: Any) -> str:
    """A private key as unencrypted PKCS#8 PEM text."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def body_lines(pem_text: str) -> list[str]:
    """The base64 lines of a PEM block: what must never show up in a message or a log."""
    return [line for line in pem_text.splitlines() if line and not line.startswith("-----")]


@pytest.fixture(scope="module")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    """Two 2048-bit RSA keys, generated once for the module."""
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]


def entry(key: rsa.RSAPrivateKey, client_id: str = "client-a", region: str = "US") -> dict[str, str]:
    """One credentials entry as the file holds it."""
    return {"client_id": client_id, "key_id": f"{client_id}-key", "private_key": pem(key), "region": region}


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class TokenSite:
    """A token server mounted on a running collector."""

    server: TokenServer
    collector: Collector

    @property
    def url(self) -> str:
        """The origin to use as the OAuth endpoint."""
        return self.collector.url


@pytest.fixture
async def us_site() -> AsyncIterator[TokenSite]:
    """A US token server on a loopback port."""
    server = TokenServer(expires_in=100.0)
    collector = oauth_collector("us", server)
    await collector.start()
    try:
        yield TokenSite(server, collector)
    finally:
        server.release()
        await collector.stop()


def register(site: TokenSite, write_key: str, credentials: OAuthCredentials) -> None:
    """Tell the token server about a client."""
    site.server.register(write_key, credentials.client_id, credentials.key_id, credentials.private_key.public_key())


def credentials_of(rsa_keys: list[rsa.RSAPrivateKey]) -> dict[str, OAuthCredentials]:
    """Credentials for KEY_A (client-a, key 0) and KEY_B (client-b, key 1), both US."""
    return parse_credentials(json.dumps({KEY_A: entry(rsa_keys[0], "client-a"), KEY_B: entry(rsa_keys[1], "client-b")}))


@pytest.fixture
async def authenticator(
    us_site: TokenSite, rsa_keys: list[rsa.RSAPrivateKey]
) -> AsyncIterator[tuple[OAuthAuthenticator, FakeClock]]:
    """A started authenticator for KEY_A and KEY_B against the US token server, on a hand-moved clock."""
    credentials = credentials_of(rsa_keys)
    for key, value in credentials.items():
        register(us_site, key, value)
    clock = FakeClock()
    auth = OAuthAuthenticator(
        credentials, {Region.US: us_site.url, Region.EU: us_site.url}, backoff=Backoff(5.0, 5.0), clock=clock
    )
    await auth.start()
    try:
        yield auth, clock
    finally:
        await auth.stop()


def token_of(authorization: Authorization) -> str:
    """The token of a Bearer authorization."""
    scheme, _, token = authorization.headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    return token


# --- the credentials file ----------------------------------------------------------------------------------------


def test_json_entries_by_raw_key_and_by_hash(rsa_keys: list[rsa.RSAPrivateKey]) -> None:
    """Entries keyed by a raw write key or by its hash are both found for the raw key; region is case-insensitive."""
    text = json.dumps({KEY_A: entry(rsa_keys[0]), write_key_hash(KEY_B): entry(rsa_keys[1], "client-b", "eu")})
    auth = OAuthAuthenticator(parse_credentials(text), {})
    found_a, found_b = auth.credentials_for(KEY_A), auth.credentials_for(KEY_B)
    assert found_a is not None and found_a.client_id == "client-a" and found_a.region is Region.US
    assert found_b is not None and found_b.client_id == "client-b" and found_b.region is Region.EU
    assert auth.credentials_for(KEY_BASIC) is None
    assert pem(rsa_keys[0]) not in repr(found_a)


def test_yaml_file_and_format_detection(rsa_keys: list[rsa.RSAPrivateKey], tmp_path: Path) -> None:
    """A .yaml file is read as YAML; a file without suffix holding JSON is read as JSON; both give the same entry."""
    key_pem = pem(rsa_keys[0]).strip().replace("\n", "\n    ")
    yaml_file = tmp_path / "credentials.yaml"
    yaml_file.write_text(
        f"{KEY_A}:\n  client_id: client-a\n  key_id: client-a-key\n  region: US\n  private_key: |\n    {key_pem}\n"
    )
    json_file = tmp_path / "credentials"
    json_file.write_text(json.dumps({KEY_A: entry(rsa_keys[0])}))
    from_yaml, from_json = load_credentials(yaml_file), load_credentials(json_file)
    assert from_yaml[KEY_A].fingerprint == from_json[KEY_A].fingerprint


def test_pem_with_escaped_line_breaks_is_accepted(rsa_keys: list[rsa.RSAPrivateKey]) -> None:
    """A PEM pasted on one line with literal backslash-n sequences is read as the same key."""
    one_line = pem(rsa_keys[0]).replace("\n", "\\n")
    text = json.dumps({KEY_A: {**entry(rsa_keys[0]), "private_key": one_line}})
    assert parse_credentials(text)[KEY_A].fingerprint == credentials_of(rsa_keys)[KEY_A].fingerprint


def test_every_bad_entry_is_named_and_no_key_material_is_quoted(rsa_keys: list[rsa.RSAPrivateKey]) -> None:
    """Each problem names its entry by position and write key hash; no PEM line or value appears in the message."""
    good = pem(rsa_keys[0])
    truncated = "\n".join(good.splitlines()[:5]) + "\n-----END PRIVATE KEY-----\n"
    encrypted = (
        rsa_keys[1]
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret-pass"),
        )
        .decode()
    )
    small = pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    elliptic = pem(ec.generate_private_key(ec.SECP256R1()))
    document = {
        KEY_A: {**entry(rsa_keys[0]), "region": "MARS"},
        "wk-2": {**entry(rsa_keys[0]), "private_key": truncated},
        "wk-3": {**entry(rsa_keys[0]), "private_key": encrypted},
        "wk-4": {**entry(rsa_keys[0]), "private_key": small, "client_id": ""},
        "wk-5": {"key_id": "k", "private_key": elliptic, "region": "US", "password": "hunter2", good: "x"},
        "wk-6": "not an object",
    }
    with pytest.raises(ConfigError) as caught:
        parse_credentials(json.dumps(document))
    message = str(caught.value)
    expected = [
        f"entry 1 (write key hash {write_key_hash(KEY_A)}): region: must be US or EU",
        f"entry 2 (write key hash {write_key_hash('wk-2')}): private_key: not a readable PEM private key",
        f"entry 3 (write key hash {write_key_hash('wk-3')}): private_key: the key is encrypted",
        f"entry 4 (write key hash {write_key_hash('wk-4')}): client_id: must be a non-empty string",
        f"entry 4 (write key hash {write_key_hash('wk-4')}): private_key: an RSA key of 1024 bits",
        f"entry 5 (write key hash {write_key_hash('wk-5')}): client_id: missing",
        f"entry 5 (write key hash {write_key_hash('wk-5')}): private_key: must be an RSA key",
        f"entry 5 (write key hash {write_key_hash('wk-5')}): unknown field 'password'",
        f"entry 5 (write key hash {write_key_hash('wk-5')}): unknown field (not shown)",
        f"entry 6 (write key hash {write_key_hash('wk-6')}): must be an object",
    ]
    for fragment in expected:
        assert fragment in message, (fragment, message)
    assert all(problem.startswith("SIDECAR_OAUTH_CREDENTIALS_FILE: ") for problem in caught.value.problems)
    for secret in [*body_lines(good), *body_lines(encrypted), *body_lines(small), "hunter2", "MARS", KEY_A, "wk-2"]:
        assert secret not in message


@pytest.mark.parametrize(
    ("suffix", "text", "expected"),
    [
        (".json", '{"wk": {"client_id": "c",,}}', "not valid JSON (line 1, column"),
        (".yaml", "wk:\n  private_key: -----BEGIN PRIVATE KEY-----\n   MIIsecretline\n  : [", "not valid YAML (line"),
        (".json", "[]", "must hold an object"),
        (".json", "  \n", "the file is empty"),
    ],
)
def test_unreadable_documents_are_reported_by_position_only(
    tmp_path: Path, suffix: str, text: str, expected: str
) -> None:
    """A parser error gives the line and column, never the text around it (YAML's own message would quote it)."""
    path = tmp_path / f"credentials{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_credentials(path)
    assert expected in str(caught.value)
    assert "MIIsecretline" not in str(caught.value)


def test_missing_file_and_key_listed_twice(rsa_keys: list[rsa.RSAPrivateKey], tmp_path: Path) -> None:
    """A missing file is a ConfigError naming the path; a key listed raw and by its hash is one entry too many."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_credentials(tmp_path / "absent.json")
    twice = json.dumps({KEY_A: entry(rsa_keys[0]), write_key_hash(KEY_A): entry(rsa_keys[1])})
    with pytest.raises(ConfigError, match="listed again by its hash in entry 2"):
        parse_credentials(twice)


def test_from_settings_loads_the_file_or_raises_config_error(rsa_keys: list[rsa.RSAPrivateKey], tmp_path: Path) -> None:
    """from_settings reads SIDECAR_OAUTH_CREDENTIALS_FILE at construction; OAUTH_REQUIRED alone refuses every key."""
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({KEY_A: entry(rsa_keys[0])}))
    settings, _ = load({"SIDECAR_OAUTH_CREDENTIALS_FILE": str(path), "SIDECAR_OAUTH_REQUIRED": "true"})
    auth = OAuthAuthenticator.from_settings(settings)
    assert not auth.requires_credentials(KEY_A)
    assert auth.requires_credentials(KEY_BASIC)
    required_only, _ = load({"SIDECAR_OAUTH_REQUIRED": "true"})
    assert OAuthAuthenticator.from_settings(required_only).requires_credentials(KEY_A)
    optional, _ = load({"SIDECAR_OAUTH_CREDENTIALS_FILE": str(path)})
    assert not OAuthAuthenticator.from_settings(optional).requires_credentials(KEY_BASIC)
    path.write_text("{")
    with pytest.raises(ConfigError):
        OAuthAuthenticator.from_settings(settings)


# --- pure pieces --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, {}, '{"access_token": "t0k", "expires_in": 3600}', TokenGrant("t0k", 3600.0)),
        (200, {}, '{"access_token": "t0k", "expires_in": 2.5}', TokenGrant("t0k", 2.5)),
        (200, {}, '{"expires_in": 3600}', Retry("HTTP 200 without an access_token", None, 200)),
        (200, {}, '{"access_token": "t0k"}', Retry("HTTP 200 without a positive expires_in", None, 200)),
        (
            200,
            {},
            '{"access_token": "t0k", "expires_in": 0}',
            Retry("HTTP 200 without a positive expires_in", None, 200),
        ),
        (200, {}, "not json", Retry("HTTP 200 without an access_token", None, 200)),
        (500, {}, "", Retry("HTTP 500", None, 500)),
        (
            503,
            {"Retry-After": "7"},
            '{"error": "temporarily_unavailable"}',
            Retry("HTTP 503 temporarily_unavailable", 7.0, 503),
        ),
        (429, {"Retry-After": "3"}, "slow down", Retry("HTTP 429", 3.0, 429)),
        (
            400,
            {},
            '{"error": "invalid_grant", "error_description": "revoked", "echo": "SECRET"}',
            Unauthorized("HTTP 400 invalid_grant: revoked", 400),
        ),
        (401, {}, '{"error": "invalid_client"}', Unauthorized("HTTP 401 invalid_client", 401)),
        (404, {}, "<html>SECRET</html>", Unauthorized("HTTP 404", 404)),
    ],
)
def test_token_answers_are_classified(status: int, headers: dict[str, str], body: str, expected: object) -> None:
    """2xx with a token and a positive expires_in is a grant; 5xx/408/429 retry; other statuses refuse; no body echo."""
    assert classify_token_response(status, headers, body, time.time()) == expected


@pytest.mark.parametrize(("expires_in", "margin"), [(2.0, 0.4), (100.0, 20.0), (300.0, 60.0), (86400.0, 60.0)])
def test_refresh_margin_is_the_smaller_of_a_minute_and_a_fifth(expires_in: float, margin: float) -> None:
    """Tokens are renewed min(60 s, 20 % of expires_in) before they expire."""
    assert refresh_margin(expires_in) == pytest.approx(margin)


def test_assertion_claims_and_unique_jti(rsa_keys: list[rsa.RSAPrivateKey]) -> None:
    """The assertion is RS256 with kid; iss = sub = client id, aud = the token URL, a short exp, a new jti each time."""
    credentials = credentials_of(rsa_keys)[KEY_A]
    now = time.time()
    assertions = [sign_assertion(credentials, "http://127.0.0.1:1/token", now) for _ in range(3)]
    header = jwt.get_unverified_header(assertions[0])
    assert header["alg"] == "RS256" and header["kid"] == "client-a-key"
    claims = [
        jwt.decode(a, rsa_keys[0].public_key(), algorithms=["RS256"], audience="http://127.0.0.1:1/token")
        for a in assertions
    ]
    assert claims[0]["iss"] == claims[0]["sub"] == "client-a"
    assert claims[0]["iat"] == int(now) and claims[0]["exp"] - claims[0]["iat"] == ASSERTION_LIFETIME <= 300
    assert len({c["jti"] for c in claims}) == 3
    assert token_form(assertions[0]) == {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertions[0],
        "scope": "tracking_api:write",
    }


# --- the authenticator against a real token server ----------------------------------------------------------------


async def test_stop_without_start_and_twice() -> None:
    """stop() is safe without start() and when called twice; start() twice is one start."""
    auth = OAuthAuthenticator({}, {})
    await auth.stop()
    await auth.start()
    await auth.start()
    await auth.stop()
    await auth.stop()


async def test_bearer_for_oauth_keys_basic_for_the_others(
    authenticator: tuple[OAuthAuthenticator, FakeClock], us_site: TokenSite
) -> None:
    """A key with credentials gets Bearer and writeKey in the body, with a token the server accepts; others Basic."""
    auth, _ = authenticator
    bearer = await auth.authorize(KEY_A, Region.US)
    assert bearer.write_key_in_body and bearer.token_id is not None
    assert us_site.server.verify_bearer(token_of(bearer), KEY_A) is None
    basic = await auth.authorize(KEY_BASIC, Region.US)
    assert basic.headers["Authorization"].startswith("Basic ") and not basic.write_key_in_body
    assert not auth.rejected(KEY_BASIC, Region.US, basic)
    assert auth.token_requests == 1 and len(us_site.server.issued) == 1


async def test_many_concurrent_authorizations_make_one_token_request(
    authenticator: tuple[OAuthAuthenticator, FakeClock], us_site: TokenSite
) -> None:
    """Fifty batches waiting for a key's first token share one token request (single-flight)."""
    auth, _ = authenticator
    us_site.server.delay = 0.2
    results = await asyncio.gather(*(auth.authorize(KEY_A, Region.US) for _ in range(50)))
    assert len(us_site.server.requests) == 1 and auth.token_requests == 1
    assert len({token_of(r) for r in results}) == 1


async def test_token_is_renewed_in_the_background_before_it_expires(
    authenticator: tuple[OAuthAuthenticator, FakeClock], us_site: TokenSite
) -> None:
    """Within the refresh margin the valid token is still handed out while a new one is fetched; then the new one."""
    auth, clock = authenticator
    first = token_of(await auth.authorize(KEY_A, Region.US))
    clock.now += 79.0  # expires_in 100, margin 20: not yet due
    assert token_of(await auth.authorize(KEY_A, Region.US)) == first
    assert len(us_site.server.requests) == 1
    clock.now += 2.0  # due: the old token comes back at once, a renewal starts
    assert token_of(await auth.authorize(KEY_A, Region.US)) == first
    async with asyncio.timeout(5):
        await us_site.server.wait_for_requests(2)
        while (second := token_of(await auth.authorize(KEY_A, Region.US))) == first:
            await asyncio.sleep(0.01)
    assert len(us_site.server.requests) == 2 and second != first
    clock.now += 200.0  # both expired: the next caller waits for a third token
    third = token_of(await auth.authorize(KEY_A, Region.US))
    assert third not in (first, second) and len(us_site.server.requests) == 3


async def test_rejected_bearer_token_is_renewed_once(
    authenticator: tuple[OAuthAuthenticator, FakeClock], us_site: TokenSite
) -> None:
    """rejected() drops the refused token and asks for one more attempt; a stale refusal keeps the renewed token."""
    auth, _ = authenticator
    first = await auth.authorize(KEY_A, Region.US)
    assert auth.rejected(KEY_A, Region.US, first)
    second = await auth.authorize(KEY_A, Region.US)
    assert token_of(second) != token_of(first) and len(us_site.server.requests) == 2
    assert auth.rejected(KEY_A, Region.US, first)  # another batch's late 401 on the old token
    assert token_of(await auth.authorize(KEY_A, Region.US)) == token_of(second)
    assert len(us_site.server.requests) == 2


async def test_failing_token_server_is_retried_with_backoff(
    authenticator: tuple[OAuthAuthenticator, FakeClock], us_site: TokenSite
) -> None:
    """A 500 becomes a retryable failure; until the backoff passes no new token request is made; then it recovers."""
    auth, clock = authenticator
    us_site.server.failing = 500
    with capture_logs() as logs, pytest.raises(AuthorizationFailed) as caught:
        await auth.authorize(KEY_A, Region.US)
    outcome = caught.value.outcome
    assert isinstance(outcome, Retry) and outcome.status == 500 and outcome.after is not None
    assert "OAuth token request failed: HTTP 500" in outcome.reason
    with pytest.raises(AuthorizationFailed) as again:
        await auth.authorize(KEY_A, Region.US)
    assert isinstance(again.value.outcome, Retry) and len(us_site.server.requests) == 1
    failed = [e for e in logs if e["event"] == "oauth_token_failed"]
    assert failed and failed[0]["write_key_hash"] == write_key_hash(KEY_A) and failed[0]["revoked"] is False
    assert failed[0]["log_level"] == "warning"
    us_site.server.failing = None
    clock.now += 5.0
    assert (await auth.authorize(KEY_A, Region.US)).write_key_in_body
    assert auth.token_failures == 1 and auth.token_refusals == 0 and auth.token_requests == 2


async def test_revoked_app_is_refused_with_a_clear_log_line(
    authenticator: tuple[OAuthAuthenticator, FakeClock], us_site: TokenSite
) -> None:
    """A token server answering 400 for a revoked app gives Unauthorized (parks the key) and an error log line."""
    auth, _ = authenticator
    us_site.server.revoke("client-a", status=400)
    with capture_logs() as logs, pytest.raises(AuthorizationFailed) as caught:
        await auth.authorize(KEY_A, Region.US)
    outcome = caught.value.outcome
    assert isinstance(outcome, Unauthorized) and outcome.status == 400
    assert "refused this write key's credentials: HTTP 400 invalid_grant" in outcome.reason
    (line,) = [e for e in logs if e["event"] == "oauth_token_failed"]
    assert line["log_level"] == "error" and line["revoked"] is True and "revoked" in line["hint"]
    assert line["write_key_hash"] == write_key_hash(KEY_A)
    assert auth.token_refusals == 1
    assert (await auth.authorize(KEY_B, Region.US)).write_key_in_body  # another app of the same server still works


async def test_wrong_region_is_refused_without_a_token_request(
    authenticator: tuple[OAuthAuthenticator, FakeClock], us_site: TokenSite
) -> None:
    """Credentials for the US never fetch a token for EU events: the key is refused (a token is regional)."""
    auth, _ = authenticator
    with pytest.raises(AuthorizationFailed) as caught:
        await auth.authorize(KEY_A, Region.EU)
    assert isinstance(caught.value.outcome, Unauthorized)
    assert "for the US region" in caught.value.outcome.reason
    assert not us_site.server.requests


async def test_a_slow_token_server_blocks_neither_other_keys_nor_beyond_the_timeout(
    us_site: TokenSite, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    """EU's token server hangs: the EU key waits at most the request timeout, the US key gets its token meanwhile."""
    eu_server = TokenServer()
    eu_site = TokenSite(eu_server, oauth_collector("eu", eu_server))
    await eu_site.collector.start()
    credentials = parse_credentials(
        json.dumps({KEY_A: entry(rsa_keys[0], "client-a"), KEY_B: entry(rsa_keys[1], "client-b", "EU")})
    )
    register(us_site, KEY_A, credentials[KEY_A])
    register(eu_site, KEY_B, credentials[KEY_B])
    eu_server.delay = 3.0
    auth = OAuthAuthenticator(
        credentials, {Region.US: us_site.url, Region.EU: eu_site.url}, request_timeout=1.0, backoff=Backoff(0.1, 0.1)
    )
    await auth.start()
    try:
        started = time.monotonic()
        slow = asyncio.create_task(auth.authorize(KEY_B, Region.EU))
        fast = await auth.authorize(KEY_A, Region.US)
        assert fast.write_key_in_body and not slow.done()
        assert time.monotonic() - started < 0.9
        with pytest.raises(AuthorizationFailed) as caught:
            await slow
        assert isinstance(caught.value.outcome, Retry) and "TimeoutError" in caught.value.outcome.reason
        assert time.monotonic() - started < 2.5
    finally:
        await auth.stop()
        eu_server.release()
        await eu_site.collector.stop()


async def test_a_cancelled_waiter_does_not_cancel_the_shared_request(
    authenticator: tuple[OAuthAuthenticator, FakeClock], us_site: TokenSite
) -> None:
    """One of two callers waiting for the first token is cancelled; the other still gets it from the one request."""
    auth, _ = authenticator
    us_site.server.delay = 0.3
    first = asyncio.create_task(auth.authorize(KEY_A, Region.US))
    second = asyncio.create_task(auth.authorize(KEY_A, Region.US))
    await asyncio.sleep(0.05)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await second).write_key_in_body
    assert len(us_site.server.requests) == 1


async def test_stop_cancels_a_token_request_in_flight(us_site: TokenSite, rsa_keys: list[rsa.RSAPrivateKey]) -> None:
    """stop() during a token request cancels it and its waiter sees cancellation; no task is left behind."""
    credentials = credentials_of(rsa_keys)
    register(us_site, KEY_A, credentials[KEY_A])
    us_site.server.delay = 2.0
    auth = OAuthAuthenticator(credentials, {Region.US: us_site.url})
    await auth.start()
    waiter = asyncio.create_task(auth.authorize(KEY_A, Region.US))
    await asyncio.sleep(0.05)
    await auth.stop()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    us_site.server.release()


async def test_credentials_file_is_reloaded_when_it_changes(
    us_site: TokenSite, rsa_keys: list[rsa.RSAPrivateKey], tmp_path: Path
) -> None:
    """A replaced file is picked up (new key, changed key loses its token); an invalid one is logged and ignored."""
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({KEY_A: entry(rsa_keys[0], "client-a")}))
    us_site.server.register(KEY_A, "client-a", "client-a-key", rsa_keys[0].public_key())
    us_site.server.register(KEY_A, "client-a2", "client-a2-key", rsa_keys[1].public_key())
    us_site.server.register(KEY_B, "client-b", "client-b-key", rsa_keys[1].public_key())
    auth = OAuthAuthenticator(load_credentials(path), {Region.US: us_site.url}, path=path, reload_interval=0.02)
    await auth.start()
    try:
        before = token_of(await auth.authorize(KEY_A, Region.US))
        assert auth.credentials_for(KEY_B) is None
        replacement = tmp_path / "new.json"
        replacement.write_text(
            json.dumps({KEY_A: entry(rsa_keys[1], "client-a2"), write_key_hash(KEY_B): entry(rsa_keys[1], "client-b")})
        )
        os.replace(replacement, path)  # an atomic swap, as a secret volume update does
        async with asyncio.timeout(5):
            while auth.credentials_for(KEY_B) is None:
                await asyncio.sleep(0.01)
        after = await auth.authorize(KEY_A, Region.US)
        assert token_of(after) != before
        assert us_site.server.requests[-1].claims["iss"] == "client-a2"
        secret = pem(rsa_keys[0])
        with capture_logs() as logs:
            path.write_text(json.dumps({KEY_A: {**entry(rsa_keys[0]), "region": "MOON"}}) + " " * 10)
            async with asyncio.timeout(5):
                while auth.reload_failures == 0:
                    await asyncio.sleep(0.01)
        assert auth.credentials_for(KEY_B) is not None and auth.reloads == 1
        (line,) = [e for e in logs if e["event"] == "oauth_credentials_invalid"]
        assert any("region: must be US or EU" in problem for problem in line["problems"])
        assert not any(part in repr(logs) for part in body_lines(secret))
    finally:
        await auth.stop()


async def test_no_token_assertion_or_key_in_any_log_line(
    authenticator: tuple[OAuthAuthenticator, FakeClock], us_site: TokenSite, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    """Fetching, renewing, rejecting and failing log the key's hash only: no token, assertion, PEM or raw key."""
    auth, _ = authenticator
    with capture_logs() as logs:
        first = await auth.authorize(KEY_A, Region.US)
        auth.rejected(KEY_A, Region.US, first)
        await auth.authorize(KEY_A, Region.US)
        us_site.server.revoke("client-b")
        with pytest.raises(AuthorizationFailed):
            await auth.authorize(KEY_B, Region.US)
    text = repr(logs)
    assert {e["event"] for e in logs} >= {"oauth_token_fetched", "oauth_token_rejected", "oauth_token_failed"}
    secrets = [KEY_A, KEY_B, *body_lines(pem(rsa_keys[0]))]
    secrets += [r.form["client_assertion"] for r in us_site.server.requests]
    secrets += [token_of(first)]
    for secret in secrets:
        assert secret not in text
