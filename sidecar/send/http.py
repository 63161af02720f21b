"""One HTTP attempt: build the batch body, POST it to the region's Tracking API, classify the answer.

The body is assembled from the events' stored JSON bytes: nothing is decoded or re-encoded here. The write key
travels in the Authorization header (Basic), or, for OAuth keys, in the body beside a Bearer token; never in a URL.
The per-attempt timeout is innermost, so it bounds exactly one attempt. Redirects are not followed: a 3xx is a failed
attempt (following one would bypass the rate limiter and could resend the body, an OAuth key's ``writeKey`` included,
to another origin).

An attempt has two steps, and the rate limiter sits between them, in the dispatcher
(:mod:`sidecar.delivery.dispatcher`): :meth:`HttpSender.authorize` gets the credentials (an OAuth key may wait for a
token), then the dispatcher takes its grant, then :meth:`HttpSender.send` starts the request at once. So a grant is
never held while a token is awaited, and requests start at the pace the grants were given.
"""

from __future__ import annotations

import time

import aiohttp
import orjson

from sidecar import __version__
from sidecar.enrich.enricher import IsoClock
from sidecar.model import Batch, Region
from sidecar.send.auth import Authenticator, Authorization
from sidecar.send.classify import Outcome, Retry, Unauthorized, classify, classify_error

USER_AGENT = f"segment-sidecar/{__version__}"


class AuthorizationFailed(Exception):
    """:meth:`Authenticator.authorize` could not supply credentials; ``outcome`` is what happens to the batch.

    ``Retry`` when the credentials may come later (a token server that fails: only this key backs off), or
    ``Unauthorized`` when they were refused (a revoked OAuth app: the key is parked). Nothing is sent.
    """

    def __init__(self, outcome: Retry | Unauthorized) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


def envelope_overhead(write_key: str) -> int:
    """Bytes a batch body adds around its events, writeKey included (sent with OAuth), for size limits."""
    return len(b'{"batch":[],"sentAt":"2026-01-01T00:00:00.000Z","writeKey":""}') + len(orjson.dumps(write_key))


def batch_body(batch: Batch, sent_at: str, write_key_in_body: bool) -> bytes:
    """``{"batch":[...],"sentAt":...}`` from the stored event bytes."""
    parts = [b'{"batch":[', b",".join(event.payload for event in batch.events), b'],"sentAt":"', sent_at.encode(), b'"']
    if write_key_in_body:
        parts += [b',"writeKey":', orjson.dumps(batch.shard[0])]
    parts.append(b"}")
    return b"".join(parts)


class HttpSender:
    """Sends one batch attempt to Segment."""

    def __init__(
        self,
        endpoints: dict[Region, str],
        authenticator: Authenticator,
        timeout: float,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._urls = {region: origin + "/v1/batch" for region, origin in endpoints.items()}
        self._authenticator = authenticator
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        self._clock = IsoClock()

    async def start(self) -> None:
        """Open the HTTP connection pool."""
        if self._session is None:
            # DNS is re-resolved every 5 minutes: Segment's addresses change without notice.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)

    async def stop(self) -> None:
        """Close the pool if this sender opened it; idempotent."""
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    async def confirm(self) -> None:
        """Segment's answer to each request was its delivery: nothing more to wait for."""

    async def authorize(self, batch: Batch) -> Authorization | Outcome:
        """The credentials of the batch's next attempt (an OAuth key may wait for its token), or the outcome of an
        attempt that cannot be made now (see :class:`AuthorizationFailed`)."""
        try:
            return await self._authenticator.authorize(*batch.shard)
        except AuthorizationFailed as exc:
            return exc.outcome

    async def send(self, batch: Batch, authorization: Authorization) -> Outcome:
        """One request, started at once; never raises for an HTTP or network failure (it becomes an Outcome)."""
        assert self._session is not None, "sender used before start()"
        write_key, region = batch.shard
        body = batch_body(batch, self._clock.format(time.time()), authorization.write_key_in_body)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **authorization.headers}
        if batch.attempts:
            headers["X-Retry-Count"] = str(batch.attempts)
        try:
            async with self._session.post(
                self._urls[region], data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                text = await response.text(errors="replace")
                outcome = classify(response.status, response.headers, text, time.time())
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return classify_error(exc)
        if (
            isinstance(outcome, Unauthorized)
            and batch.auth_renewals == 0
            and self._authenticator.rejected(write_key, region, authorization)
        ):
            # A refused Bearer token is renewed and tried once more before the key itself is blamed (the scheduler
            # counts the renewal in the key's next batch).
            return Retry(f"{outcome.reason} (token renewed)", 0.0, outcome.status, renewed_credentials=True)
        return outcome
