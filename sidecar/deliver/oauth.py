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
  :class:`~sidecar.deliver.http.AuthorizationFailed` for that key alone, with backoff between token requests; one
  that refuses the credentials (any other status: a revoked app) raises an ``Unauthorized`` one, which parks the key.

Each token request signs a fresh RS256 assertion: header ``kid``; claims ``iss`` = ``sub`` = client id, ``aud`` = the
token URL used, ``iat``, ``exp`` a minute later and a new ``jti``. Tokens, assertions and keys never reach a log:
events (``oauth_token_fetched``, ``oauth_token_failed``...) name the key by its hash only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson
import structlog
import yaml
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from sidecar.config import Settings, variable_name
from sidecar.deliver.auth import Authorization, BasicAuthenticator
from sidecar.deliver.backoff import Backoff
from sidecar.deliver.classify import Retry, Unauthorized, classify_error, server_delay
from sidecar.deliver.http import USER_AGENT, AuthorizationFailed
from sidecar.errors import ConfigError
from sidecar.model import Region, write_key_hash
from sidecar.tasks import cancel_and_wait

log = structlog.get_logger("sidecar.oauth")

SCOPE = "tracking_api:write"
GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60
"""Seconds an assertion is valid: it is used once, right after it is signed."""
REFRESH_MARGIN_MAX = 60.0
REFRESH_MARGIN_SHARE = 0.2
"""A token is renewed min(60 s, 20 % of its lifetime) before it expires."""
MIN_RSA_BITS = 2048
RELOAD_INTERVAL = 5.0
"""Seconds between two checks of the credentials file for changes."""
FILE_VARIABLE = variable_name("oauth_credentials_file")

_FIELDS = ("client_id", "key_id", "private_key", "region")
_HASH = re.compile(r"^[0-9a-f]{12}$")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


# --- the credentials file ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OAuthCredentials:
    """One source's OAuth app: the client and key that sign the assertion, and the region its tokens are valid in."""

    client_id: str
    key_id: str
    region: Region
    private_key: RSAPrivateKey = field(repr=False, compare=False)
    fingerprint: str = field(repr=False)
    """A digest of all four values: a reload drops a key's token only when this changes."""


def load_credentials(path: Path) -> dict[str, OAuthCredentials]:
    """Read and validate a credentials file; raise :class:`ConfigError` naming every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{FILE_VARIABLE}: {path} is not UTF-8 text"]) from None
    except OSError as exc:
        raise ConfigError([f"{FILE_VARIABLE}: cannot read {path}: {exc.strerror or type(exc).__name__}"]) from None
    is_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() not in (".yaml", ".yml") and text.lstrip().startswith("{")
    )
    return parse_credentials(text, "json" if is_json else "yaml")


def parse_credentials(text: str, fmt: str = "json") -> dict[str, OAuthCredentials]:
    """Parse a credentials document (``fmt`` is ``json`` or ``yaml``) into credentials per write key (or hash).

    Raises :class:`ConfigError` listing every bad entry as ``entry N (write key hash H): field: problem``; no value
    from the file is ever quoted, so no key material can leak through the message.
    """
    document = _decode(text, fmt)
    if not isinstance(document, dict):
        raise ConfigError([f"{FILE_VARIABLE}: the file must hold an object mapping write keys to credentials"])
    problems: list[str] = []
    found: dict[str, OAuthCredentials] = {}
    for index, (key, entry) in enumerate(document.items(), start=1):
        if not isinstance(key, str) or not key.strip():
            problems.append(f"{FILE_VARIABLE}: entry {index}: the write key must be a non-empty string")
            continue
        credentials, entry_problems = _entry(entry)
        problems += [f"{FILE_VARIABLE}: {_entry_name(index, key)}: {problem}" for problem in entry_problems]
        if credentials is not None:
            found[key] = credentials
    positions = {key: index for index, key in enumerate(document, start=1)}
    for key in found:
        if not _HASH.match(key) and write_key_hash(key) in found:
            other = positions[write_key_hash(key)]
            problems.append(
                f"{FILE_VARIABLE}: {_entry_name(positions[key], key)}: listed again by its hash in entry {other}"
            )
    if problems:
        raise ConfigError(problems)
    return found


def _decode(text: str, fmt: str) -> Any:
    """The parsed document; parser errors are reported by position only (YAML's would quote the file)."""
    if not text.strip():
        raise ConfigError([f"{FILE_VARIABLE}: the file is empty (write {{}} for no credentials)"])
    try:
        return json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ConfigError([f"{FILE_VARIABLE}: not valid JSON ({where}: {exc.msg})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError([f"{FILE_VARIABLE}: not valid YAML{where}"]) from None


def _entry_name(index: int, key: str) -> str:
    hashed = key if _HASH.match(key) else write_key_hash(key)
    return f"entry {index} (write key hash {hashed})"


def _entry(entry: Any) -> tuple[OAuthCredentials | None, list[str]]:
    """One entry's credentials, or the problems that prevent them."""
    if not isinstance(entry, dict):
        return None, ["must be an object with client_id, key_id, private_key and region"]
    problems = []
    for name in entry:
        if name not in _FIELDS:
            shown = repr(name) if isinstance(name, str) and _PLAIN_NAME.match(name) else "(not shown)"
            problems.append(f"unknown field {shown}; expected {', '.join(_FIELDS)}")
    names: dict[str, str] = {}
    for name in ("client_id", "key_id"):
        value = entry.get(name)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{name}: {'missing' if value is None else 'must be a non-empty string'}")
        else:
            names[name] = value.strip()
    region_text = entry.get("region")
    region = None
    if isinstance(region_text, str) and region_text.strip().lower() in {r.value for r in Region}:
        region = Region(region_text.strip().lower())
    else:
        problems.append(f"region: {'missing' if region_text is None else 'must be US or EU'}")
    private_key, key_problem = _private_key(entry.get("private_key"))
    if key_problem is not None:
        problems.append(f"private_key: {key_problem}")
    if problems or private_key is None or region is None:
        return None, problems
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    digest = hashlib.sha256("\0".join((names["client_id"], names["key_id"], region.value)).encode() + der).hexdigest()
    return OAuthCredentials(names["client_id"], names["key_id"], region, private_key, digest), []


def _private_key(value: Any) -> tuple[RSAPrivateKey | None, str | None]:
    """(key, None) or (None, problem); the problem never quotes the value."""
    if value is None:
        return None, "missing"
    if not isinstance(value, str) or "-----BEGIN" not in value:
        return None, "must be a PEM block (-----BEGIN PRIVATE KEY----- ...), PKCS#8"
    pem = value
    if "\n" not in pem.strip() and "\\n" in pem:
        pem = pem.replace("\\n", "\n")  # pasted with escaped line breaks, as in an environment variable
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        return None, "the key is encrypted; give it unencrypted, as Segment issues it"
    except (ValueError, UnsupportedAlgorithm):
        return None, "not a readable PEM private key (PKCS#8, as Segment issues it)"
    if not isinstance(key, RSAPrivateKey):
        return None, "must be an RSA key (assertions are signed RS256)"
    if key.key_size < MIN_RSA_BITS:
        return None, f"an RSA key of {key.key_size} bits; RS256 needs at least {MIN_RSA_BITS}"
    return key, None


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed file apart: mtime, size and inode (a Kubernetes secret update swaps a symlink)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


# --- the token request -------------------------------------------------------------------------------------------


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


# --- the authenticator --------------------------------------------------------------------------------------------


class _TokenSlot:
    """The token state of one (write key, region); replaced, not mutated, when its credentials change."""

    __slots__ = (
        "authorization",
        "credentials",
        "expires_at",
        "failure",
        "failures",
        "fetch",
        "hashed",
        "refresh_at",
        "retry_at",
    )

    def __init__(self, write_key: str, credentials: OAuthCredentials) -> None:
        self.credentials = credentials
        self.hashed = write_key_hash(write_key)
        self.authorization: Authorization | None = None
        self.expires_at = 0.0
        self.refresh_at = 0.0
        self.fetch: asyncio.Task[None] | None = None
        self.failures = 0
        self.failure: Retry | Unauthorized | None = None
        self.retry_at = 0.0


class OAuthAuthenticator:
    """Bearer tokens for the write keys with OAuth credentials, Basic auth for the others.

    Counters for metrics: :attr:`token_requests`, :attr:`token_failures` (refusals included),
    :attr:`token_refusals`, :attr:`reloads` and :attr:`reload_failures`.
    """

    def __init__(
        self,
        credentials: Mapping[str, OAuthCredentials],
        endpoints: Mapping[Region, str],
        *,
        required: bool = False,
        path: Path | None = None,
        request_timeout: float = 10.0,
        backoff: Backoff | None = None,
        reload_interval: float = RELOAD_INTERVAL,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = dict(credentials)
        self._token_urls = {region: origin.rstrip("/") + "/token" for region, origin in endpoints.items()}
        self._required = required
        self._path = path
        self._signature = _file_signature(path) if path is not None else None
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._backoff = backoff or Backoff(0.5, 60.0)
        self._reload_interval = reload_interval
        self._session = session
        self._owns_session = session is None
        self._clock = clock
        self._wall = wall
        self._basic = BasicAuthenticator()
        self._slots: dict[tuple[str, Region], _TokenSlot] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._running = False
        self._grants = 0
        self.token_requests = 0
        self.token_failures = 0
        self.token_refusals = 0
        self.reloads = 0
        self.reload_failures = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> OAuthAuthenticator:
        """Load and validate SIDECAR_OAUTH_CREDENTIALS_FILE (or raise :class:`ConfigError`), then build."""
        path = settings.oauth_credentials_file
        credentials = load_credentials(path) if path is not None else {}
        log.info("oauth_credentials_loaded", entries=len(credentials), required=settings.oauth_required)
        return cls(
            credentials,
            {region: settings.oauth_endpoint(region) for region in Region},
            required=settings.oauth_required,
            path=path,
            request_timeout=settings.request_timeout,
            backoff=Backoff(settings.retry_base_delay, settings.retry_max_delay),
        )

    # --- lifecycle

    async def start(self) -> None:
        """Open the token server's connection pool and start watching the credentials file; returns at once."""
        if self._running:
            return
        self._running = True
        if self._session is None:
            self._session = aiohttp.ClientSession(raise_for_status=False)
            self._owns_session = True
        if self._path is not None:
            self._watcher = asyncio.create_task(self._watch(self._path), name="oauth-credentials-watch")

    async def stop(self) -> None:
        """Cancel the file watcher and token requests in flight, close the pool; idempotent, safe without start."""
        self._running = False
        watcher, self._watcher = self._watcher, None
        await cancel_and_wait([*self._tasks, watcher])
        self._tasks.clear()
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    # --- the Authenticator protocol

    def credentials_for(self, write_key: str) -> OAuthCredentials | None:
        """The OAuth credentials of a write key, listed under the key itself or under its hash."""
        found = self._credentials.get(write_key)
        return found if found is not None else self._credentials.get(write_key_hash(write_key))

    def requires_credentials(self, write_key: str) -> bool:
        """True with SIDECAR_OAUTH_REQUIRED for a key without credentials."""
        return self._required and self.credentials_for(write_key) is None

    async def authorize(self, write_key: str, region: Region) -> Authorization:
        """Bearer with ``writeKey`` in the body for a key with credentials (waiting for its first token), else Basic.

        Raises :class:`AuthorizationFailed` when no token can be had right now (``Retry``) or the credentials are
        refused or for the other region (``Unauthorized``).
        """
        credentials = self.credentials_for(write_key)
        if credentials is None:
            return await self._basic.authorize(write_key, region)
        if credentials.region is not region:
            raise AuthorizationFailed(
                Unauthorized(
                    f"this write key's OAuth credentials are for the {credentials.region.name} region, but its events "
                    f"were sent for {region.name}: a token is valid only in its own region",
                    401,
                )
            )
        slot = self._slot(write_key, region, credentials)
        now = self._clock()
        if slot.authorization is not None and now < slot.expires_at:
            if now >= slot.refresh_at and slot.fetch is None and now >= slot.retry_at:
                self._begin_fetch(slot, region)  # renewed in the background: the current token is still good
            return slot.authorization
        if slot.fetch is None:
            if slot.failure is not None and now < slot.retry_at:
                raise AuthorizationFailed(_still_failing(slot.failure, slot.retry_at - now))
            self._begin_fetch(slot, region)
        assert slot.fetch is not None
        # Shielded: a caller that gives up (cancelled) must not cancel the request the other callers wait for.
        await asyncio.shield(slot.fetch)
        if slot.authorization is not None and self._clock() < slot.expires_at:
            return slot.authorization
        failure = slot.failure or Retry("no OAuth token was issued")
        raise AuthorizationFailed(_still_failing(failure, max(0.0, slot.retry_at - self._clock())))

    def rejected(self, write_key: str, region: Region, authorization: Authorization) -> bool:
        """A 401 on a Bearer request: forget that token (unless already renewed) and retry once with a new one."""
        if authorization.token_id is None:
            return False
        slot = self._slots.get((write_key, region))
        if (
            slot is not None
            and slot.authorization is not None
            and slot.authorization.token_id == authorization.token_id
        ):
            slot.authorization = None
            slot.expires_at = slot.refresh_at = 0.0
            log.info("oauth_token_rejected", write_key_hash=slot.hashed, region=region.value)
        return True

    # --- tokens

    def _slot(self, write_key: str, region: Region, credentials: OAuthCredentials) -> _TokenSlot:
        slot = self._slots.get((write_key, region))
        if slot is None or slot.credentials.fingerprint != credentials.fingerprint:
            slot = self._slots[(write_key, region)] = _TokenSlot(write_key, credentials)
        return slot

    def _begin_fetch(self, slot: _TokenSlot, region: Region) -> None:
        if self._session is None:
            raise RuntimeError("OAuthAuthenticator used before start()")
        task = asyncio.create_task(self._fetch(slot, region), name=f"oauth-token-{slot.hashed}")
        slot.fetch = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch(self, slot: _TokenSlot, region: Region) -> None:
        """One token request for ``slot``; its result (token or failure) is written to the slot."""
        assert self._session is not None
        started = self._clock()
        self.token_requests += 1
        url = self._token_urls[region]
        try:
            result = await self._request(self._session, slot.credentials, url)
        finally:
            slot.fetch = None
        now = self._clock()
        if isinstance(result, TokenGrant):
            self._grants += 1
            slot.authorization = Authorization(
                {"Authorization": f"Bearer {result.access_token}"},
                write_key_in_body=True,
                token_id=f"{slot.hashed}-{self._grants}",
            )
            # Lifetime counted from when the request left: never trust a token past what the server granted.
            slot.expires_at = started + result.expires_in
            slot.refresh_at = slot.expires_at - refresh_margin(result.expires_in)
            slot.failures, slot.failure, slot.retry_at = 0, None, 0.0
            log.info(
                "oauth_token_fetched",
                write_key_hash=slot.hashed,
                region=region.value,
                expires_in=result.expires_in,
                refresh_in=round(slot.refresh_at - now, 3),
                seconds=round(now - started, 3),
            )
            return
        self.token_failures += 1
        slot.failures += 1
        delay = self._backoff.delay(slot.failures - 1, result.after if isinstance(result, Retry) else None)
        slot.retry_at = now + delay
        common = {
            "write_key_hash": slot.hashed,
            "region": region.value,
            "status": result.status,
            "reason": result.reason,
            "attempt": slot.failures,
            "retry_in": round(delay, 3),
        }
        if isinstance(result, Retry):
            slot.failure = Retry(f"OAuth token request failed: {result.reason}", delay, result.status)
            log.warning("oauth_token_failed", revoked=False, **common)
        else:
            self.token_refusals += 1
            slot.failure = Unauthorized(
                f"the OAuth token server refused this write key's credentials: {result.reason}", result.status
            )
            log.error(
                "oauth_token_failed",
                revoked=True,
                hint="the OAuth app is revoked or its client id, key id or private key is wrong: the key's events "
                "wait (parked) until the token server accepts the credentials again",
                **common,
            )

    async def _request(
        self, session: aiohttp.ClientSession, credentials: OAuthCredentials, url: str
    ) -> TokenGrant | Retry | Unauthorized:
        form = token_form(sign_assertion(credentials, url, self._wall()))
        try:
            async with session.post(
                url,
                data=form,  # aiohttp encodes a dict as application/x-www-form-urlencoded
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                text = await response.text(errors="replace")
                return classify_token_response(response.status, response.headers, text, self._wall())
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            outcome = classify_error(exc)
            assert isinstance(outcome, Retry)
            return outcome

    # --- reloading the credentials file

    async def _watch(self, path: Path) -> None:
        """Poll the file's signature; reload it when it changes."""
        while True:
            await asyncio.sleep(self._reload_interval)
            signature = _file_signature(path)
            if signature is None or signature == self._signature:
                continue
            self._signature = signature
            try:
                credentials = await asyncio.to_thread(load_credentials, path)
            except ConfigError as exc:
                credentials, problems = None, exc.problems
            if credentials is None:
                # A bad edit must not drop working credentials: keys would stall (or fall back to nothing).
                self.reload_failures += 1
                log.error(
                    "oauth_credentials_invalid",
                    problems=problems,
                    kept_entries=len(self._credentials),
                    hint="the previous credentials stay in use until the file is fixed",
                )
                continue
            self.replace_credentials(credentials)

    def replace_credentials(self, credentials: Mapping[str, OAuthCredentials]) -> None:
        """Use new credentials from now on; keys whose credentials changed or went away lose their cached token."""
        old = self._credentials
        self._credentials = dict(credentials)
        changed = sum(1 for key, value in old.items() if key in credentials and credentials[key] != value)
        removed = sum(1 for key in old if key not in credentials)
        for key, slot in list(self._slots.items()):
            current = self.credentials_for(key[0])
            if current is None or current.fingerprint != slot.credentials.fingerprint:
                del self._slots[key]
        self.reloads += 1
        log.info(
            "oauth_credentials_reloaded",
            entries=len(credentials),
            added=sum(1 for key in credentials if key not in old),
            changed=changed,
            removed=removed,
        )


def _still_failing(failure: Retry | Unauthorized, wait: float) -> Retry | Unauthorized:
    """The failure as the sender reports it, with the time left before the next token request."""
    if isinstance(failure, Retry):
        return Retry(failure.reason, wait, failure.status)
    return failure
