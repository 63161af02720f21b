"""A local OAuth authorization server for the Tracking API, mounted on a :class:`~sidecar.collector.server.Collector`.

It plays Segment's regional ``POST /token`` (``client_credentials`` with a JWT client assertion) so that tests can run
the sidecar's OAuth path over real sockets, and checks what Segment's server checks:

===========================================================  ======  =========================
check                                                        status  ``error``
===========================================================  ======  =========================
form-encoded, ``grant_type=client_credentials``,              400     invalid_request /
``client_assertion_type`` jwt-bearer, a ``client_assertion``          unsupported_grant_type
``scope`` is ``tracking_api:write``                           400     invalid_scope
``iss`` names a registered client, ``kid`` its key,           401     invalid_client
RS256 signature valid against its public key
``sub`` = ``iss``; ``aud`` = this token URL; ``exp`` in the   400     invalid_grant
future, at most 5 minutes after ``iat``; ``jti`` never seen
the client is not revoked (:meth:`TokenServer.revoke`)        400 or 401 (as told)
===========================================================  ======  =========================

A good request gets ``200 {"access_token", "token_type": "Bearer", "expires_in", "scope"}`` with an opaque token valid
:attr:`TokenServer.expires_in` seconds. :meth:`TokenServer.verify_bearer` is the collector's ``bearer_verifier``: it
refuses (401 on ``/v1/batch``) a token that is unknown, expired, withdrawn, or issued for another write key. Every token
request is recorded in :attr:`TokenServer.requests` with the assertion's decoded header and claims.

Mount it with :func:`oauth_collector`, which builds a collector with the route and the verifier in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from sidecar.collector.server import Collector

SCOPE = "tracking_api:write"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300
"""Seconds between ``iat`` and ``exp`` beyond which an assertion is refused as not short-lived."""


@dataclass(slots=True)
class Client:
    """A registered OAuth app: its key and the write key (source) it is attached to."""

    client_id: str
    key_id: str
    public_key: RSAPublicKey = field(repr=False)
    write_key: str = field(repr=False)
    revoked_status: int | None = None
    """When set, token requests are answered with this status (400 or 401), as for a revoked app."""


@dataclass(slots=True)
class TokenRequest:
    """One request to ``/token`` as the server saw it, whatever it answered."""

    status: int
    error: str | None
    form: dict[str, str] = field(repr=False)
    header: dict[str, Any] = field(default_factory=dict)
    """The assertion's JOSE header (``alg``, ``kid``...), when it could be read."""
    claims: dict[str, Any] = field(default_factory=dict)
    """The assertion's claims (read without verification, so a refused one is visible too)."""
    content_type: str = ""


@dataclass(slots=True)
class _Token:
    client_id: str
    write_key: str = field(repr=False)
    expires_at: float


class TokenServer:
    """Segment's ``POST /token`` for one region; see the module docstring for what it checks and answers."""

    def __init__(self, expires_in: float = 3600.0, clock: Callable[[], float] = time.time) -> None:
        self.expires_in = expires_in
        """Lifetime of the tokens issued from now on, in seconds (``expires_in`` in the answer)."""
        self.failing: int | None = None
        """When set, every token request is answered with this status (500, say) before any check."""
        self.delay = 0.0
        """Seconds to wait before answering a token request (cut short by :meth:`release`)."""
        self.requests: list[TokenRequest] = []
        self.arrived = 0
        """Token requests received so far, answered or not (those :attr:`delay` holds included)."""
        self._clock = clock
        self._clients: dict[str, Client] = {}
        self._tokens: dict[str, _Token] = {}
        self._seen_jti: set[str] = set()
        self._issued = asyncio.Event()
        self._released = asyncio.Event()

    # --- set-up and faults

    def register(self, write_key: str, client_id: str, key_id: str, public_key: RSAPublicKey) -> None:
        """Accept assertions from ``client_id`` signed by the key ``key_id``, for tokens valid with ``write_key``."""
        self._clients[client_id] = Client(client_id, key_id, public_key, write_key)

    def revoke(self, client_id: str, status: int = 401) -> None:
        """Revoke an app: its tokens stop working and its token requests are answered ``status`` (400 or 401)."""
        self._clients[client_id].revoked_status = status
        self.withdraw_tokens(client_id)

    def restore(self, client_id: str) -> None:
        """Undo :meth:`revoke` (tokens withdrawn stay withdrawn)."""
        self._clients[client_id].revoked_status = None

    def withdraw_tokens(self, client_id: str | None = None) -> int:
        """Invalidate the tokens issued so far (to one client, or all), as a server-side expiry; return how many."""
        doomed = [token for token, issued in self._tokens.items() if client_id in (None, issued.client_id)]
        for token in doomed:
            del self._tokens[token]
        return len(doomed)

    def release(self) -> None:
        """End every :attr:`delay` now and for good, so that no handler outlives a test (call before stopping)."""
        self.delay = 0.0
        self._released.set()

    @property
    def issued(self) -> list[TokenRequest]:
        """The token requests answered with a token."""
        return [request for request in self.requests if request.status == 200]

    async def wait_for_requests(self, count: int) -> None:
        """Wait until at least ``count`` token requests were answered, whatever the status (bound it with a timeout)."""
        while len(self.requests) < count:
            self._issued.clear()
            await self._issued.wait()

    # --- the HTTP side

    def routes(self) -> list[web.RouteDef]:
        """The ``POST /token`` route, for a collector's ``extra_routes``."""
        return [web.post("/token", self._token)]

    def verify_bearer(self, token: str, write_key: str) -> str | None:
        """The collector's ``bearer_verifier``: None for a live token issued for ``write_key``, else the reason."""
        issued = self._tokens.get(token)
        if issued is None:
            return "the access token is not valid (unknown, withdrawn or revoked)"
        if self._clock() >= issued.expires_at:
            return "the access token has expired"
        if issued.write_key != write_key:
            return "the access token was not issued for this write key"
        return None

    async def _token(self, request: web.Request) -> web.Response:
        form = {name: str(value) for name, value in (await request.post()).items()}
        record = TokenRequest(0, None, form, content_type=request.content_type)
        self.arrived += 1
        try:
            if self.delay > 0 and not self._released.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), self.delay)
            response = self._answer(request, form, record)
        except _Refusal as refusal:
            record.status, record.error = refusal.status, refusal.error
            response = web.json_response(
                {"error": refusal.error, "error_description": refusal.description}, status=refusal.status
            )
        self.requests.append(record)
        self._issued.set()
        return response

    def _answer(self, request: web.Request, form: dict[str, str], record: TokenRequest) -> web.Response:
        """A token, or raise :class:`_Refusal` for the first failed check (module docstring, in order)."""
        if self.failing is not None:
            raise _Refusal(self.failing, "server_error", "the token server is failing (injected fault)")
        if record.content_type != "application/x-www-form-urlencoded":
            raise _Refusal(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
        if form.get("grant_type") != "client_credentials":
            raise _Refusal(400, "unsupported_grant_type", "grant_type must be client_credentials")
        assertion = form.get("client_assertion", "")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
            raise _Refusal(400, "invalid_request", "a jwt-bearer client_assertion is required")
        if form.get("scope") != SCOPE:
            raise _Refusal(400, "invalid_scope", f"scope must be {SCOPE}")
        try:
            record.header = jwt.get_unverified_header(assertion)
            record.claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _Refusal(400, "invalid_request", "client_assertion is not a JWT") from None
        client = self._clients.get(str(record.claims.get("iss")))
        if client is None or record.header.get("kid") != client.key_id or record.header.get("alg") != "RS256":
            raise _Refusal(401, "invalid_client", "unknown client, key id or algorithm")
        audience = f"{request.url.origin()}/token"
        try:
            claims = jwt.decode(
                assertion,
                client.public_key,
                algorithms=["RS256"],
                audience=audience,
                issuer=client.client_id,
                options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]},
            )
        except jwt.InvalidSignatureError:
            raise _Refusal(401, "invalid_client", "the assertion's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise _Refusal(400, "invalid_grant", f"the assertion is not acceptable: {exc}") from None
        if claims["sub"] != client.client_id:
            raise _Refusal(400, "invalid_grant", "sub must equal iss (the client id)")
        if int(claims["exp"]) - int(claims["iat"]) > MAX_ASSERTION_LIFETIME:
            raise _Refusal(400, "invalid_grant", f"the assertion may live at most {MAX_ASSERTION_LIFETIME} s")
        if claims["jti"] in self._seen_jti:
            raise _Refusal(400, "invalid_grant", "jti was already used")
        self._seen_jti.add(str(claims["jti"]))
        if client.revoked_status is not None:
            error = "invalid_client" if client.revoked_status == 401 else "invalid_grant"
            raise _Refusal(client.revoked_status, error, "the OAuth app was revoked")
        token = secrets.token_urlsafe(32)
        self._tokens[token] = _Token(client.client_id, client.write_key, self._clock() + self.expires_in)
        record.status = 200
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in, "scope": SCOPE}
        )


class _Refusal(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def oauth_collector(region: str, server: TokenServer, **options: Any) -> Collector:
    """A collector for ``region`` that also serves ``server``'s ``/token`` and accepts its Bearer tokens."""
    collector = Collector(region, extra_routes=server.routes(), **options)
    collector.bearer_verifier = server.verify_bearer
    return collector
