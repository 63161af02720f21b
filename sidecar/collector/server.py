"""A local, Segment-compatible Tracking API (one region per :class:`Collector`) for tests, the demo and offline QA.

``POST /v1/batch`` makes the checks Segment documents, in the order tabled in :mod:`sidecar.collector.checks`, each
answered with a JSON body ``{"code": ..., "message": ...}`` like Segment's errors; success is ``200 {"success":
true}``. Injected faults (:mod:`sidecar.collector.faults`) are decided before these checks.

The admin routes on the same port (``/_collector/...``) and the live page (:mod:`sidecar.collector.page`) never show
a raw write key, only :func:`sidecar.model.write_key_hash`. Every route answers only loopback Host names, IP literals
and ``allowed_hosts``, and refuses cross-origin writes (:mod:`sidecar.http_guard`): a web page open in the same
browser can neither read the events nor inject faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
import aiohttp.http_exceptions
import orjson
import structlog
from aiohttp import web

from sidecar.collector.checks import BatchError, check_event, inspect_batch, parse_authorization, parse_batch
from sidecar.collector.faults import Faults
from sidecar.collector.page import add_page_routes
from sidecar.collector.store import RESET, ReceivedRequest, Store
from sidecar.config import SEGMENT_MAX_BATCH_BYTES
from sidecar.http_guard import local_guard
from sidecar.model import Region

__all__ = [
    "BatchError",
    "BearerVerifier",
    "Collector",
    "check_event",
    "inspect_batch",
    "parse_authorization",
    "parse_batch",
]

log = structlog.get_logger("sidecar.collector")

BearerVerifier = Callable[[str, str], str | None]
"""``(token, write key from the body) -> None`` when the token is good for that key, else the reason it is not."""

_RECORDED_HEADERS = ("User-Agent", "Content-Type", "Content-Encoding", "X-Retry-Count")
_INLINE_BODY_BYTES = 32 * 1024
"""Bodies up to this size are parsed on the event loop; larger ones in a worker thread."""
_MAX_ADMIN_WAIT = 60.0
_SHUTDOWN_TIMEOUT = 0.5
"""Seconds :meth:`Collector.stop` lets in-flight requests finish (a slow-server delay is cut short)."""


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"code": code, "message": message}),
        content_type="application/json",
        headers=headers,
    )


class Collector:
    """One region's fake Tracking API (aiohttp). Tests start one per region (US and EU) on port 0.

    After :meth:`start`, :attr:`url` is ``http://<host>:<port>``; point the sidecar's ``SIDECAR_ENDPOINT_US`` or
    ``_EU`` at it. The port bound first is kept, so ``stop()`` then ``start()`` plays an outage (connections
    refused) after which the same URL works again. :attr:`store` holds what arrived, :attr:`faults` what to do wrong.
    ``extra_routes`` are mounted on the same app (a token server for OAuth tests, say).
    """

    def __init__(
        self,
        region: str = "us",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        extra_routes: Iterable[web.AbstractRouteDef] = (),
        keep_events: bool = True,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        self.region: str = Region(region.lower()).value
        self.host = host
        self.port = port
        self.store = Store(keep_events=keep_events)
        self.faults = Faults()
        self.bearer_verifier: BearerVerifier | None = None
        self._extra_routes = list(extra_routes)
        self._allowed_hosts = tuple(allowed_hosts)
        self._runner: web.AppRunner | None = None
        self._in_flight = 0

    @property
    def url(self) -> str:
        """``http://<host>:<port>`` once started (still valid after :meth:`stop`, for a restart)."""
        if not self.port:
            raise RuntimeError("the collector has not been started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._runner is not None

    @property
    def in_flight(self) -> int:
        """How many ``/v1/batch`` requests are being handled right now (waiting out a ``delay``, say)."""
        return self._in_flight

    def app(self) -> web.Application:
        """The aiohttp application: ``/v1/batch``, the admin routes, the live page and any extra routes."""
        app = web.Application(middlewares=[local_guard(self._allowed_hosts)])
        app.router.add_post("/v1/batch", self._batch)
        app.router.add_get("/_collector/events", self._admin_events)
        app.router.add_get("/_collector/requests", self._admin_requests)
        app.router.add_post("/_collector/reset", self._admin_reset)
        app.router.add_get("/_collector/faults", self._admin_get_faults)
        app.router.add_post("/_collector/faults", self._admin_set_faults)
        app.router.add_delete("/_collector/faults", self._admin_clear_faults)
        add_page_routes(app, self.store, self.region)
        app.add_routes(self._extra_routes)
        return app

    async def start(self) -> None:
        """Bind and serve; a no-op when already running."""
        if self._runner is not None:
            return
        # lingering_time=0: a body left unread (bad gzip) closes the connection instead of logging a drain error.
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT, lingering_time=0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        if not self.port:
            self.port = int(runner.addresses[0][1])
        self._runner = runner
        log.info("collector_started", region=self.region, url=self.url)

    async def stop(self) -> None:
        """Close the live page streams, then stop listening; idempotent and safe without :meth:`start`."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.store.close_subscribers()
        await runner.cleanup()
        log.info("collector_stopped", region=self.region, requests=len(self.store.requests))

    # --- POST /v1/batch -------------------------------------------------------------------------------------------

    async def _batch(self, request: web.Request) -> web.StreamResponse:
        received = ReceivedRequest(
            started_at=time.monotonic(),
            status=0,
            headers={name: request.headers[name] for name in _RECORDED_HEADERS if name in request.headers},
        )
        self._in_flight += 1
        try:
            response = await self._answer(request, received)
        except asyncio.CancelledError:
            # stop() cut a slow answer short: the client got no answer, as with a reset.
            received.status, received.code = RESET, "cancelled"
            self.store.record(received)
            raise
        except Exception:
            log.exception("collector_bug", region=self.region, write_key_hash=received.write_key_hash)
            response = _error(500, "collector_bug", "the collector failed on this request; see its log")
        finally:
            self._in_flight -= 1
        received.status = response.status if response is not None else RESET
        self.store.record(received)
        if response is None:
            _reset_connection(request)
            return web.Response()  # never sent: the transport is already gone
        return response

    async def _answer(self, request: web.Request, received: ReceivedRequest) -> web.Response | None:
        """Decide the answer to one batch request, filling ``received``; None means: reset the connection."""
        scheme, credential = parse_authorization(request.headers.get("Authorization"))
        received.auth_scheme = scheme
        if scheme == "basic":
            received.write_key = credential
        body, received.body_bytes, body_problem = await _read_body(request)
        if len(body) > _INLINE_BODY_BYTES:
            # Parsing 500 KB takes milliseconds of CPU: in a thread, the loop keeps stamping other requests' start
            # times promptly (the GIL is handed over every few ms), so the rate measured at the collector stays true.
            envelope, events, body_error = await asyncio.to_thread(inspect_batch, body)
        else:
            envelope, events, body_error = inspect_batch(body)
        received.events = [event for event in events if isinstance(event, dict)]
        body_key = envelope.get("writeKey")
        if received.write_key is None and isinstance(body_key, str) and body_key:
            received.write_key = body_key

        fault_response = await self._injected_fault(received)
        if received.fault is not None:
            return fault_response
        try:
            self._check_auth(scheme, credential, received.write_key)
            self._check_body(request, body_problem, body_error, events)
        except BatchError as exc:
            received.code = exc.code
            log.info(
                "collector_refused",
                region=self.region,
                status=exc.status,
                code=exc.code,
                message=exc.message,
                write_key_hash=received.write_key_hash,
            )
            response = _error(exc.status, exc.code, exc.message)
            if body_problem is not None:
                response.force_close()  # the rest of an undecodable body cannot be read
            return response
        return web.Response(body=b'{"success":true}', content_type="application/json")

    async def _injected_fault(self, received: ReceivedRequest) -> web.Response | None:
        """Apply the request-level faults, setting ``received.fault`` when one decides the answer.

        Returns the response to send, or None (with ``fault == "reset"``, or no fault at all).
        """
        faults = self.faults
        if not faults.applies_to(received.write_key):
            return None
        if faults.delay > 0:
            await asyncio.sleep(faults.delay)
        if faults.draw_reset():
            received.fault = "reset"
            return None
        if faults.down:
            received.fault, received.code = "down", "service_unavailable"
            return _error(503, "service_unavailable", "the collector is down (injected fault)")
        if faults.take_throttle():
            received.fault, received.code = "throttle", "too_many_requests"
            seconds = str(faults.retry_after)
            headers = {"Retry-After": seconds, "X-RateLimit-Reset": seconds}
            return _error(429, "too_many_requests", "rate limited (injected fault)", headers)
        status = faults.draw_error()
        if status is not None:
            received.fault, received.code = "error", "server_error"
            return _error(status, "server_error", "server error (injected fault)")
        return None

    def _check_body(
        self, request: web.Request, body_problem: str | None, body_error: BatchError | None, events: list[Any]
    ) -> None:
        """Raise 400 for the first Segment check the request fails (see the table in the module docstring)."""
        content_type = request.headers.get("Content-Type", "")
        if content_type.partition(";")[0].strip().lower() != "application/json":
            raise BatchError(400, "invalid_content_type", "Content-Type must be application/json")
        if body_problem == "unreadable":
            raise BatchError(400, "invalid_body", "the body could not be read (bad gzip or cut short)")
        if body_error is not None:
            raise body_error
        rejected = [e["messageId"] for e in events if e.get("messageId") in self.faults.reject_message_ids]
        if rejected:
            raise BatchError(400, "invalid_event", f"event {rejected[0]} rejected (injected fault)")

    def _check_auth(self, scheme: str | None, credential: str | None, write_key: str | None) -> None:
        """Raise 401 unless the request authenticates as Segment requires (see the module docstring)."""
        if scheme == "basic":
            if credential is None:
                raise BatchError(401, "unauthorized", "Basic credentials must be base64('<write key>:')")
        elif scheme == "bearer" and self.bearer_verifier is not None:
            if credential is None or write_key is None:
                raise BatchError(401, "unauthorized", "a Bearer request needs a token and writeKey in the body")
            problem = self.bearer_verifier(credential, write_key)
            if problem is not None:
                raise BatchError(401, "unauthorized", problem)
        else:
            raise BatchError(401, "unauthorized", "Authorization: Basic base64('<write key>:') is required")
        if write_key in self.faults.revoked_write_keys:
            raise BatchError(401, "unauthorized", "this write key is not valid (revoked)")

    # --- admin routes ---------------------------------------------------------------------------------------------

    async def _admin_events(self, request: web.Request) -> web.Response:
        """Delivered events, optionally of one ``write_key`` or ``write_key_hash``.

        ``wait_for=N&timeout=S`` (S at most 60, default 10) first waits until N such events arrived or S seconds
        passed, so that a test in another process or language needs no sleep loop; the answer is the list either way.
        """
        write_key = request.query.get("write_key")
        wanted_hash = request.query.get("write_key_hash")

        def matching() -> list[dict[str, Any]]:
            if wanted_hash is None:
                return self.store.events(write_key)
            return [
                event
                for received in self.store.requests
                if received.accepted and received.write_key_hash == wanted_hash
                for event in received.events
            ]

        if "wait_for" in request.query:
            try:
                wanted = int(request.query["wait_for"])
                timeout = min(float(request.query.get("timeout", "10")), _MAX_ADMIN_WAIT)
            except ValueError:
                return _error(400, "invalid_query", "wait_for must be an integer and timeout a number of seconds")
            with contextlib.suppress(TimeoutError):
                await self.store.wait_until(lambda _: len(matching()) >= wanted, timeout)
        return web.Response(body=orjson.dumps(matching()), content_type="application/json")

    async def _admin_requests(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "1000"))
        except ValueError:
            return _error(400, "invalid_query", "limit must be an integer")
        requests = self.store.requests
        summary = {
            "region": self.region,
            "count": len(requests),
            "events_accepted": self.store.accepted_event_count,
            "statuses": {str(status): count for status, count in sorted(self.store.statuses().items())},
            "max_requests_in_window": self.store.max_requests_in_window(1.0),
            "requests": [received.summary() for received in requests[-limit:]] if limit > 0 else [],
        }
        return web.Response(body=orjson.dumps(summary), content_type="application/json")

    async def _admin_reset(self, request: web.Request) -> web.Response:
        """Forget what arrived and clear every fault: a fresh collector on the same port."""
        self.store.clear()
        self.faults.clear()
        return web.json_response({"reset": True})

    async def _admin_get_faults(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.faults.describe()), content_type="application/json")

    async def _admin_set_faults(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return _error(400, "invalid_faults", f"invalid JSON: {exc}")
        if not isinstance(changes, dict):
            return _error(400, "invalid_faults", "the body must be a JSON object")
        try:
            self.faults.update(changes)
        except ValueError as exc:
            return _error(400, "invalid_faults", str(exc))
        return await self._admin_get_faults(request)

    async def _admin_clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return await self._admin_get_faults(request)


async def _read_body(request: web.Request) -> tuple[bytes, int, str | None]:
    """Read the whole (already gzip-decompressed) body, keeping at most one chunk past the 500 KB limit in memory.

    Returns the kept bytes, the number of bytes read, and None or ``"unreadable"`` for a body that is not valid gzip
    or was cut short. Reading an oversized body to its end (rather than closing early) lets the client read the 400.
    """
    chunks: list[bytes] = []
    kept = 0
    total = 0
    try:
        async for chunk in request.content.iter_chunked(64 * 1024):
            total += len(chunk)
            if kept <= SEGMENT_MAX_BATCH_BYTES:
                chunks.append(chunk)
                kept += len(chunk)
    except (web.RequestPayloadError, aiohttp.ClientPayloadError, aiohttp.http_exceptions.HttpProcessingError):
        return b"", total, "unreadable"
    return b"".join(chunks), total, None


def _reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP reset (SO_LINGER 0), so the client sees an error rather than an answer."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
