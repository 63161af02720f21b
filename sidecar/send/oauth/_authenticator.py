"""The authenticator: Bearer tokens per (write key, region), single-flight fetches, renewal, reloads of the file.

See :mod:`sidecar.send.oauth` for the life of a token. Token requests and the file watcher run under a
:class:`~sidecar.tasks.Supervisor` (units ``oauth.token`` and ``oauth.watcher``).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp
import structlog

from sidecar.backoff import Backoff
from sidecar.config import Settings
from sidecar.errors import ConfigError
from sidecar.model import Region, write_key_hash
from sidecar.send.auth import Authorization, BasicAuthenticator
from sidecar.send.classify import Retry, Unauthorized, classify_error
from sidecar.send.http import USER_AGENT, AuthorizationFailed
from sidecar.send.oauth._credentials import OAuthCredentials, file_signature, load_credentials
from sidecar.send.oauth._tokens import (
    TokenGrant,
    classify_token_response,
    refresh_margin,
    sign_assertion,
    token_form,
)
from sidecar.tasks import Supervision, Supervisor

log = structlog.get_logger("sidecar.oauth")

RELOAD_INTERVAL = 5.0
"""Seconds between two checks of the credentials file for changes."""


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
        self.fetch: asyncio.Future[None] | None = None
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
        supervision: Supervision | None = None,
    ) -> None:
        self._credentials = dict(credentials)
        self._token_urls = {region: origin.rstrip("/") + "/token" for region, origin in endpoints.items()}
        self._required = required
        self._path = path
        self._signature = file_signature(path) if path is not None else None
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._backoff = backoff or Backoff(0.5, 60.0)
        self._reload_interval = reload_interval
        self._session = session
        self._owns_session = session is None
        self._clock = clock
        self._wall = wall
        self._basic = BasicAuthenticator()
        self._slots: dict[tuple[str, Region], _TokenSlot] = {}
        self._supervisor = Supervisor("oauth", supervision=supervision)
        self._running = False
        self._grants = 0
        self.token_requests = 0
        self.token_failures = 0
        self.token_refusals = 0
        self.reloads = 0
        self.reload_failures = 0

    @classmethod
    def from_settings(cls, settings: Settings, supervision: Supervision | None = None) -> OAuthAuthenticator:
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
            supervision=supervision,
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
        await self._supervisor.start()
        if self._path is not None:
            self._supervisor.keep("watcher", functools.partial(self._watch, self._path))

    async def stop(self) -> None:
        """Cancel the file watcher and token requests in flight, close the pool; idempotent, safe without start."""
        self._running = False
        await self._supervisor.stop()
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
        fetch: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slot.fetch = fetch
        self._supervisor.spawn("token", functools.partial(self._fetch, slot, region, fetch))

    async def _fetch(self, slot: _TokenSlot, region: Region, fetch: asyncio.Future[None]) -> None:
        """One token request for ``slot``; its result (token or failure) is written to the slot, then ``fetch``,
        which the callers waiting for it await, is resolved, or cancelled with the request (a stop)."""
        try:
            await self._fetch_token(slot, region)
        except asyncio.CancelledError:
            fetch.cancel()
            raise
        finally:
            if not fetch.done():
                fetch.set_result(None)

    async def _fetch_token(self, slot: _TokenSlot, region: Region) -> None:
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
            self._supervisor.report("watcher", None)
            signature = file_signature(path)
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
