"""OAuth end to end: a real sidecar fetching tokens from the collectors acting as Segment's authorization servers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from sidecar._proto import sidecar_pb2 as pb
from sidecar.collector.token_server import TokenServer, oauth_collector
from sidecar.model import Region, write_key_hash
from sidecar.send.oauth import OAuthAuthenticator
from tests.conftest import SidecarFactory, rpc_error
from tests.support.harness import Collectors, SidecarUnderTest, free_port

KEY_A = "wk-oauth-us-a"
KEY_B = "wk-oauth-us-b"
KEY_EU = "wk-oauth-eu"
KEY_BASIC = "wk-basic-us"


def pem(key: rsa.RSAPrivateKey) -> str:
    """A private key as unencrypted PKCS#8 PEM text, as Segment issues it."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass
class App:
    """One OAuth app: its client id, key id, key pair, region and the write key (source) it belongs to."""

    write_key: str
    client_id: str
    key: rsa.RSAPrivateKey
    region: str = "US"

    @property
    def key_id(self) -> str:
        """The key id Segment shows for the app's public key."""
        return f"{self.client_id}-key"

    def entry(self) -> dict[str, str]:
        """The app's entry in the credentials file."""
        return {"client_id": self.client_id, "key_id": self.key_id, "private_key": pem(self.key), "region": self.region}


@pytest.fixture(scope="module")
def apps() -> dict[str, App]:
    """Three OAuth apps (two US, one EU), with RSA keys generated for this module."""
    made = [
        App(KEY_A, "client-a", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        App(KEY_B, "client-b", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        App(KEY_EU, "client-eu", rsa.generate_private_key(public_exponent=65537, key_size=2048), "EU"),
    ]
    return {app.write_key: app for app in made}


@dataclass
class TokenServers:
    """The token server of each region, mounted on that region's collector."""

    us: TokenServer
    eu: TokenServer

    def of(self, app: App) -> TokenServer:
        """The server that issues tokens to ``app``."""
        return self.us if app.region == "US" else self.eu


@pytest.fixture
def token_servers(apps: dict[str, App]) -> TokenServers:
    """A US and an EU token server that know every app."""
    servers = TokenServers(TokenServer(), TokenServer())
    for app in apps.values():
        servers.of(app).register(app.write_key, app.client_id, app.key_id, app.key.public_key())
    return servers


@pytest.fixture
async def collectors(token_servers: TokenServers) -> AsyncIterator[Collectors]:
    """The US and EU collectors, each also serving its region's ``/token`` and accepting its Bearer tokens."""
    pair = Collectors(oauth_collector("us", token_servers.us), oauth_collector("eu", token_servers.eu))
    await pair.us.start()
    await pair.eu.start()
    try:
        yield pair
    finally:
        token_servers.us.release()
        token_servers.eu.release()
        await pair.us.stop()
        await pair.eu.stop()


def credentials_file(tmp_path: Path, apps: list[App], name: str = "oauth.json") -> Path:
    """A credentials file holding ``apps``."""
    path = tmp_path / name
    path.write_text(json.dumps({app.write_key: app.entry() for app in apps}))
    return path


def oauth_env(collectors: Collectors, path: Path, **extra: str) -> dict[str, str]:
    """Variables pointing the sidecar's OAuth at the collectors' token servers."""
    return {
        "SIDECAR_OAUTH_CREDENTIALS_FILE": str(path),
        "SIDECAR_OAUTH_ENDPOINT_US": collectors.us.url,
        "SIDECAR_OAUTH_ENDPOINT_EU": collectors.eu.url,
        **extra,
    }


def track(write_key: str, index: int, region: int = pb.REGION_US) -> pb.TrackRequest:
    """A Track call numbered ``index``."""
    return pb.TrackRequest(
        write_key=write_key, region=region, user_id=f"u{index}", event="Email Opened", message_id=f"{write_key}-{index}"
    )


async def flush(running: SidecarUnderTest, timeout: float = 15.0) -> pb.FlushResponse:
    """Flush and return the counts."""
    return await running.stub.Flush(pb.FlushRequest(), timeout=timeout)


def authenticator_of(running: SidecarUnderTest) -> OAuthAuthenticator:
    """The sidecar's OAuth authenticator."""
    auth = running.app.authenticator
    assert isinstance(auth, OAuthAuthenticator)
    return auth


def accepted_ids(collectors: Collectors, write_key: str) -> Counter[str]:
    """How many times each messageId of ``write_key`` was accepted, over both regions."""
    events = collectors.us.store.events(write_key) + collectors.eu.store.events(write_key)
    return Counter(event["messageId"] for event in events)


async def test_bearer_for_oauth_keys_while_basic_keys_keep_working(
    sidecar_factory: SidecarFactory,
    collectors: Collectors,
    token_servers: TokenServers,
    apps: dict[str, App],
    tmp_path: Path,
) -> None:
    """OAuth keys (US and EU) arrive with Bearer and writeKey in the body; a key without credentials keeps Basic."""
    path = credentials_file(tmp_path, [apps[KEY_A], apps[KEY_EU]])
    running = await sidecar_factory(**oauth_env(collectors, path))
    with capture_logs() as logs:
        for index in range(20):
            await running.stub.Track(track(KEY_A, index))
            await running.stub.Track(track(KEY_EU, index, pb.REGION_EU))
            await running.stub.Track(track(KEY_BASIC, index))
        result = await flush(running)
    assert result.delivered == 60 and result.parked == 0
    schemes = {
        (request.write_key, request.auth_scheme)
        for request in collectors.us.store.requests + collectors.eu.store.requests
        if request.accepted
    }
    assert schemes == {(KEY_A, "bearer"), (KEY_EU, "bearer"), (KEY_BASIC, "basic")}
    for key in (KEY_A, KEY_EU, KEY_BASIC):
        assert accepted_ids(collectors, key) == Counter({f"{key}-{i}": 1 for i in range(20)})
    assert len(token_servers.us.issued) == 1 and len(token_servers.eu.issued) == 1
    assert authenticator_of(running).token_requests == 2
    fetched = {e["write_key_hash"] for e in logs if e["event"] == "oauth_token_fetched"}
    assert fetched == {write_key_hash(KEY_A), write_key_hash(KEY_EU)}
    text = repr(logs)
    leaks = [KEY_A, KEY_EU, *pem(apps[KEY_A].key).splitlines()[1:-1]]
    leaks += [r.form["client_assertion"] for r in token_servers.us.requests + token_servers.eu.requests]
    assert not [leak for leak in leaks if leak in text]


async def test_assertion_claims_as_the_token_server_decodes_them(
    sidecar_factory: SidecarFactory,
    collectors: Collectors,
    token_servers: TokenServers,
    apps: dict[str, App],
    tmp_path: Path,
) -> None:
    """The token request is form-encoded with the documented fields; the assertion is RS256 with kid, iss = sub,
    aud = the overridden token URL, a short exp and a jti never reused."""
    path = credentials_file(tmp_path, [apps[KEY_A]])
    running = await sidecar_factory(**oauth_env(collectors, path))
    await running.stub.Track(track(KEY_A, 0))
    await flush(running)
    auth = authenticator_of(running)
    token = (await auth.authorize(KEY_A, Region.US)).headers["Authorization"].removeprefix("Bearer ")
    assert auth.rejected(KEY_A, Region.US, await auth.authorize(KEY_A, Region.US))
    await auth.authorize(KEY_A, Region.US)  # a second token request, for a second jti
    first, second = token_servers.us.requests
    assert first.status == second.status == 200
    assert first.content_type == "application/x-www-form-urlencoded"
    assert set(first.form) == {"grant_type", "client_assertion_type", "client_assertion", "scope"}
    assert first.form["grant_type"] == "client_credentials"
    assert first.form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert first.form["scope"] == "tracking_api:write"
    assert first.header == {"alg": "RS256", "kid": "client-a-key", "typ": "JWT"}
    claims = first.claims
    assert claims["iss"] == claims["sub"] == "client-a"
    assert claims["aud"] == f"{collectors.us.url}/token"
    assert 0 < claims["exp"] - claims["iat"] <= 60
    assert first.claims["jti"] != second.claims["jti"]
    assert token_servers.us.verify_bearer(token, KEY_A) is None


async def test_token_expiring_mid_run_is_renewed_without_losing_or_duplicating_events(
    sidecar_factory: SidecarFactory,
    collectors: Collectors,
    token_servers: TokenServers,
    apps: dict[str, App],
    tmp_path: Path,
) -> None:
    """Tokens living 2 s, plus one withdrawn early (a 401 mid-run): every event arrives exactly once, no key parks."""
    token_servers.us.expires_in = 2.0
    path = credentials_file(tmp_path, [apps[KEY_A]])
    running = await sidecar_factory(**oauth_env(collectors, path))
    sent = 0
    with capture_logs() as logs:
        async with asyncio.timeout(15):
            # Send steadily until four tokens were issued: the first, its replacement after the 401 below, then two
            # renewals 0.4 s before expiry (about 3.5 s in all).
            while len(token_servers.us.issued) < 4:
                await running.stub.Track(track(KEY_A, sent))
                sent += 1
                if sent == 5:
                    # The server forgets the live token: the next batch gets a 401, renews once and is retried.
                    await flush(running)
                    token_servers.us.withdraw_tokens()
                await asyncio.sleep(0.02)  # pacing the caller, not waiting for a result
            result = await flush(running)
    assert result.parked == 0 and result.dead_lettered == 0
    assert accepted_ids(collectors, KEY_A) == Counter({f"{KEY_A}-{i}": 1 for i in range(sent)})
    refused = [r for r in collectors.us.store.requests if r.status == 401]
    assert refused, "the withdrawn token was never used: the 401 path was not exercised"
    assert not [e for e in logs if e["event"] == "write_key_parked"]
    assert any(e["event"] == "oauth_token_rejected" for e in logs)


async def test_many_concurrent_authorizations_share_one_token_request(
    sidecar_factory: SidecarFactory,
    collectors: Collectors,
    token_servers: TokenServers,
    apps: dict[str, App],
    tmp_path: Path,
) -> None:
    """A hundred concurrent authorize() calls for a key without a token make exactly one token request."""
    token_servers.us.delay = 0.3
    path = credentials_file(tmp_path, [apps[KEY_A]])
    running = await sidecar_factory(**oauth_env(collectors, path))
    auth = authenticator_of(running)
    results = await asyncio.gather(*(auth.authorize(KEY_A, Region.US) for _ in range(100)))
    assert len(token_servers.us.requests) == 1 and auth.token_requests == 1
    assert len({r.headers["Authorization"] for r in results}) == 1


async def test_a_token_server_answering_late_and_all_at_once_does_not_push_requests_over_the_cap(
    sidecar_factory: SidecarFactory,
    collectors: Collectors,
    token_servers: TokenServers,
    apps: dict[str, App],
    tmp_path: Path,
) -> None:
    """25 OAuth keys at a cap of 10: the token server holds every request until all 25 attempts have their grants,
    then answers them at once. The requests still reach Segment at no more than 10 in any one-second window, because
    an attempt that waited more than 0.1 s after its grant takes a fresh one. Without that, all 25 arrive in one
    burst, because the grants were given while the tokens were awaited."""
    many = [App(f"wk-oauth-many-{n:02d}", f"client-many-{n:02d}", apps[KEY_A].key) for n in range(25)]
    for app in many:
        token_servers.us.register(app.write_key, app.client_id, app.key_id, app.key.public_key())
    token_servers.us.delay = 30.0
    path = credentials_file(tmp_path, many)
    running = await sidecar_factory(**oauth_env(collectors, path, SIDECAR_MAX_REQUESTS_PER_SECOND="10"))
    for app in many:
        await running.stub.Track(track(app.write_key, 1), timeout=5)
    async with asyncio.timeout(10):  # paced at 9/s: each key's attempt gets its grant, then asks for its token
        while token_servers.us.arrived < len(many):
            await asyncio.sleep(0.05)
    token_servers.us.release()
    flushed = await flush(running, timeout=20)
    assert flushed.delivered == 25
    assert all(accepted_ids(collectors, app.write_key) == {f"{app.write_key}-1": 1} for app in many)
    assert collectors.us.store.max_requests_in_window(1.0) <= 10


@pytest.mark.parametrize("status", [400, 401])
async def test_revoked_app_parks_only_its_key(
    sidecar_factory: SidecarFactory,
    collectors: Collectors,
    token_servers: TokenServers,
    apps: dict[str, App],
    tmp_path: Path,
    status: int,
) -> None:
    """After an app is revoked (token server answers 400/401), its key parks with a clear log line and a counted
    refusal, while another OAuth key and a Basic key keep delivering; its events stay spooled, never sent as Basic,
    and are delivered once the app is restored."""
    path = credentials_file(tmp_path, [apps[KEY_A], apps[KEY_B]])
    running = await sidecar_factory(**oauth_env(collectors, path, SIDECAR_PARKED_RETRY_INTERVAL="1s"))
    for key in (KEY_A, KEY_B, KEY_BASIC):
        await running.stub.Track(track(key, 0))
    assert (await flush(running)).delivered == 3
    token_servers.us.revoke("client-a", status)
    with capture_logs() as logs:
        for index in range(1, 6):
            for key in (KEY_A, KEY_B, KEY_BASIC):
                await running.stub.Track(track(key, index))
        result = await flush(running)
    assert result.parked == 5 and list(result.parked_write_key_hashes) == [write_key_hash(KEY_A)]
    assert accepted_ids(collectors, KEY_A) == Counter({f"{KEY_A}-0": 1})
    for key in (KEY_B, KEY_BASIC):
        assert accepted_ids(collectors, key) == Counter({f"{key}-{i}": 1 for i in range(6)})
    assert not [r for r in collectors.us.store.requests if r.write_key == KEY_A and r.auth_scheme == "basic"]
    failed = [e for e in logs if e["event"] == "oauth_token_failed"]
    assert failed and {e["write_key_hash"] for e in failed} == {write_key_hash(KEY_A)}
    assert failed[0]["log_level"] == "error" and failed[0]["revoked"] is True and failed[0]["status"] == status
    parked = [e for e in logs if e["event"] == "write_key_parked"]
    assert [e["write_key_hash"] for e in parked] == [write_key_hash(KEY_A)]
    assert "OAuth token server refused" in parked[0]["reason"]
    assert authenticator_of(running).token_refusals >= 1
    # Restoring the app lets the parked key's next probe get a token and deliver what waited, once each.
    token_servers.us.restore("client-a")
    await collectors.us.store.wait_until(lambda _: len(accepted_ids(collectors, KEY_A)) == 6, 10)
    assert accepted_ids(collectors, KEY_A) == Counter({f"{KEY_A}-{i}": 1 for i in range(6)})


async def test_oauth_required_refuses_keys_without_credentials(
    sidecar_factory: SidecarFactory, collectors: Collectors, apps: dict[str, App], tmp_path: Path
) -> None:
    """With SIDECAR_OAUTH_REQUIRED a key without credentials gets FAILED_PRECONDITION naming the file (not the key);
    a key with credentials is accepted."""
    path = credentials_file(tmp_path, [apps[KEY_A]])
    running = await sidecar_factory(**oauth_env(collectors, path, SIDECAR_OAUTH_REQUIRED="true"))
    await running.stub.Track(track(KEY_A, 0))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await running.stub.Track(track(KEY_BASIC, 0))
    error = rpc_error(caught.value)
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    message = error.details() or ""
    assert "SIDECAR_OAUTH_CREDENTIALS_FILE" in message and write_key_hash(KEY_BASIC) in message
    assert KEY_BASIC not in message
    assert (await flush(running)).delivered == 1


def serve_with(tmp_path: Path, credentials: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sidecar serve`` with a credentials file and wait for it to exit (it should not start)."""
    env = {
        **os.environ,
        "SIDECAR_OAUTH_CREDENTIALS_FILE": str(credentials),
        "SIDECAR_LISTEN": f"127.0.0.1:{free_port()}",
        "SIDECAR_SPOOL_DIR": str(tmp_path / "spool"),
        "SIDECAR_INTEGRATION_NAME": "acme-mail",
        "SIDECAR_LOG_FORMAT": "json",
        "SIDECAR_METRICS_LISTEN": "off",
    }
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "serve"], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def malformed_file(tmp_path: Path, apps: dict[str, App]) -> tuple[Path, list[str]]:
    """A credentials file whose second entry has a truncated key and a bad region; returns it and its secrets."""
    good = apps[KEY_A].entry()
    lines = good["private_key"].splitlines()
    truncated = "\n".join([*lines[:6], lines[-1]]) + "\n"
    path = tmp_path / "bad-oauth.json"
    entries: dict[str, Any] = {KEY_A: good, KEY_B: {**apps[KEY_B].entry(), "private_key": truncated, "region": "Mars"}}
    path.write_text(json.dumps(entries))
    secrets = [line for line in lines if not line.startswith("-----")] + [KEY_A, KEY_B, "Mars"]
    return path, secrets


def test_malformed_credentials_file_stops_start_up_naming_the_entry(tmp_path: Path, apps: dict[str, App]) -> None:
    """`python -m sidecar serve` with a bad entry exits 2 before serving, like any configuration error: one message
    naming the entry and its fields, no traceback, and no key material, write key or value from the file."""
    path, secrets = malformed_file(tmp_path, apps)
    finished = serve_with(tmp_path, path)
    assert finished.returncode == 2, finished.stderr
    # Anything before it is a warning about an unknown variable of the caller's environment (CI sets a few).
    assert "segment-sidecar: invalid configuration:" in finished.stderr
    expected = f"SIDECAR_OAUTH_CREDENTIALS_FILE: entry 2 (write key hash {write_key_hash(KEY_B)})"
    assert f"{expected}: region: must be US or EU" in finished.stderr
    assert f"{expected}: private_key: not a readable PEM private key" in finished.stderr
    assert "entry 1" not in finished.stderr
    output = finished.stdout + finished.stderr
    assert "Traceback" not in output
    assert not [secret for secret in secrets if secret in output]
    assert "BEGIN PRIVATE KEY" not in output
    assert "sidecar_started" not in output


async def test_token_counters_are_exported_on_metrics(
    sidecar_factory: SidecarFactory,
    collectors: Collectors,
    token_servers: TokenServers,
    apps: dict[str, App],
    tmp_path: Path,
) -> None:
    """/metrics exports the authenticator's token requests, failures and refusals: a revoked app's refusals count."""
    path = credentials_file(tmp_path, [apps[KEY_A], apps[KEY_B]])
    running = await sidecar_factory(**oauth_env(collectors, path, SIDECAR_METRICS_LISTEN="127.0.0.1:0"))
    token_servers.us.revoke("client-b", 401)
    await running.stub.Track(track(KEY_A, 0))
    await running.stub.Track(track(KEY_B, 0))
    result = await flush(running)
    assert result.delivered == 1 and result.parked == 1
    assert running.app.metrics_server is not None
    url = f"http://127.0.0.1:{running.app.metrics_server.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}
    auth = authenticator_of(running)
    assert values["sidecar_oauth_token_requests_total"] == auth.token_requests >= 2
    assert values["sidecar_oauth_token_failures_total"] == auth.token_failures >= 1
    assert values["sidecar_oauth_token_refusals_total"] == auth.token_refusals >= 1
