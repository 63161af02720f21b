"""The HTTP intake's server: Segment's Tracking API on ``SIDECAR_HTTP_LISTEN``, in front of the gRPC API's downstream.

One handler serves every path, so that every answer (404 and 405 included) has Segment's JSON error shape. A request
goes through, in order, each step refusing it as early and as cheaply as it can:

1. accepting (503 while shutting down), the path (404), ``POST`` (405), the browser guard (403), the sidecar's
   token when it listens beyond loopback (401), the requests in progress (429);
2. the body, read in chunks up to its limit within :data:`BODY_SECONDS` (400 past the limit, 408 when too slow),
   inflated up to the same limit, parsed (400);
3. each event: read, checked and enriched by the same downstream as a gRPC call (:class:`sidecar.intake.Intake`);
   a refused event is named in the answer, the others go on;
4. one spool append for the request's accepted events: the answer is 200 (or 400 naming the refused ones) only
   once it returns, the same acknowledgement boundary as gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import Sequence
from typing import Any, Protocol

import structlog
from aiohttp import web

from sidecar.api.downstream import Downstream
from sidecar.api.places import Places
from sidecar.api.servicer import IntakeObserver
from sidecar.config import Settings, listens_on_loopback
from sidecar.errors import CredentialsMissing, FieldViolation, InvalidEvent, ShuttingDown, SidecarError
from sidecar.http_endpoint import HttpEndpoint
from sidecar.http_guard import host_allowed, origin_allowed
from sidecar.http_intake.answers import SUCCESS, Answer, Refusal, for_error, problem, refused
from sidecar.http_intake.parse import (
    GZIP_SLACK_BYTES,
    Envelope,
    RequestProblem,
    Route,
    batch_items,
    envelope,
    inflate,
    parse_body,
    repeated_keys,
    route,
    to_call,
    too_large,
    write_key_from_header,
)
from sidecar.http_intake.recent import RecentIds
from sidecar.model import CallType, Event, Region, Warning

log = structlog.get_logger("sidecar.http_intake")

_TYPES: dict[Any, CallType] = {kind.value: kind for kind in CallType}
_GRPC_CODE_NAMES = {429: "resource_exhausted", 503: "unavailable"}
"""The metrics' ``reason`` label names gRPC codes: the whole-request refusals that carry counted events."""

BODY_SECONDS = 10.0
"""Time a request's body may take to arrive, from its headers; a slower one is answered 408 (libraries retry it)."""
BUSY_RETRY_AFTER = 1.0
"""``Retry-After`` for too many requests in progress: whole seconds are all the libraries read."""
SLICE_SECONDS = 0.002
"""How long a request checks events before letting other requests run (as the gRPC Batch does)."""
TOKEN_HEADER = "X-Sidecar-Token"  # noqa: S105 - a header name, not a secret
"""Where a caller puts ``SIDECAR_AUTH_TOKEN`` when the intake listens beyond loopback."""


class ReceivedCounter(Protocol):
    """Counts events as they arrive and those refused with their whole request (the metrics)."""

    def call_received(self, rpc: str, events: int, intake: str = "grpc") -> None:
        """A request carrying ``events`` events arrived."""

    def call_unreported(self, call_type: str, code: str, events: int) -> None:
        """Events refused with their whole request."""


class HttpIntake:
    """Segment's HTTP Tracking API served locally; ``start``/``stop`` are idempotent and ``stop`` is safe unstarted."""

    def __init__(
        self,
        downstream: Downstream,
        listen: str,
        default_region: Region,
        places: Places,
        *,
        observers: Sequence[IntakeObserver] = (),
        counter: ReceivedCounter | None = None,
        token: str | None = None,
        loopback: bool = True,
        body_seconds: float = BODY_SECONDS,
    ) -> None:
        self._downstream = downstream
        self._default_region = default_region
        self._observers = tuple(observers)
        self._counter = counter
        self._places = places  # SIDECAR_MAX_CONCURRENT_CALLS, shared with the gRPC edge
        self._token = token.encode() if token is not None and not loopback else None
        self._loopback = loopback
        self.body_seconds = body_seconds
        self._recent = RecentIds(time.monotonic)
        self._in_progress = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.accepting = False
        # Inflating is ours (parse.inflate, bounded): aiohttp's own would inflate a gzip bomb before we see it. No
        # lingering: the rest of a body refused early is not read (the connection closes instead).
        app = web.Application(handler_args={"auto_decompress": False, "lingering_time": 0})
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._endpoint = HttpEndpoint(app, listen, "SIDECAR_HTTP_LISTEN")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        downstream: Downstream,
        observers: Sequence[IntakeObserver],
        counter: ReceivedCounter | None,
        places: Places,
    ) -> HttpIntake:
        """The intake ``SIDECAR_HTTP_LISTEN`` asks for, sharing the gRPC API's token and its
        ``SIDECAR_MAX_CONCURRENT_CALLS`` places (``places``)."""
        assert settings.http_listen is not None
        return cls(
            downstream,
            settings.http_listen,
            settings.default_region,
            places,
            observers=observers,
            counter=counter,
            token=settings.auth_token.get_secret_value() if settings.auth_token is not None else None,
            loopback=listens_on_loopback(settings.http_listen),
        )

    @property
    def port(self) -> int:
        """The bound TCP port (0 before start)."""
        return self._endpoint.port

    @property
    def in_progress(self) -> int:
        """Requests being read or handled now."""
        return self._in_progress

    async def start(self) -> None:
        """Bind and serve; ConfigError naming SIDECAR_HTTP_LISTEN when the address is unusable."""
        await self._endpoint.start()
        self.accepting = True
        log.info("http_intake_started", port=self.port)

    async def stop(self, wait: float = 5.0) -> None:
        """Answer 503 from now on, let requests in progress finish their spool append (within ``wait``), close."""
        self.accepting = False
        if self._in_progress:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._idle.wait()
        await self._endpoint.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        answer, events, name = await self._answer(request)
        if answer.status != 200 and answer.body.get("code") != "events_refused":
            if self._counter is not None and events:
                kind = "unknown" if name == "batch" else name  # a batch mixes types, as the gRPC Batch counts it
                self._counter.call_unreported(kind, _GRPC_CODE_NAMES.get(answer.status, "internal"), events)
            if answer.status >= 429:
                log.warning("http_request_refused", status=answer.status, code=answer.body["code"])
        response = web.Response(
            status=answer.status, body=answer.encoded(), content_type="application/json", headers=answer.headers
        )
        if not request.content.at_eof():
            # Answered before the body ended (too large, too slow, refused up front): close rather than read the
            # rest of a body we refused to keep the connection.
            response.force_close()
        return response

    async def _answer(self, request: web.Request) -> tuple[Answer, int, str]:
        """The answer, the events the request carried (0 before they are read) and the endpoint's name."""
        if not self.accepting:
            return for_error(ShuttingDown("the sidecar is shutting down; retry after it restarts")), 0, "unknown"
        found = route(request.path)
        if found is None:
            return problem(404, "not_found", f"{request.path} is not an endpoint; use /v1/batch"), 0, "unknown"
        if request.method != "POST":
            return problem(405, "method_not_allowed", f"{request.path} takes POST"), 0, found.name
        refusal = self._guard(request)
        if refusal is not None:
            return refusal, 0, found.name
        if not self._places.take():
            message = (
                f"the sidecar has {self._places.limit} calls in progress (gRPC and HTTP together), its limit "
                "(SIDECAR_MAX_CONCURRENT_CALLS)"
            )
            return problem(429, "busy", message, BUSY_RETRY_AFTER), 0, found.name
        self._in_progress += 1
        self._idle.clear()
        try:
            return await self._request(request, found)
        except RequestProblem as exc:
            return problem(exc.status, exc.code, str(exc)), 0, found.name
        except Exception:
            # A bug, not the caller's input: a plain 500 (the traceback goes to the log only). Ids already spooled
            # are remembered before anything that could raise here, so the library's retry is not spooled twice.
            log.exception("http_internal_error")
            return problem(500, "internal", "internal error in the sidecar; see its log"), 0, found.name
        finally:
            self._places.give_back()
            self._in_progress -= 1
            if not self._in_progress:
                self._idle.set()

    def _guard(self, request: web.Request) -> Answer | None:
        # A web page open in a browser may write to a loopback port (a form, a no-cors fetch) and, with a rebound
        # DNS name, even look same-origin: refuse both, as the sidecar's other local pages do (sidecar.http_guard).
        host = request.headers.get("Host")
        if self._loopback and host is not None and not host_allowed(host):
            return problem(403, "forbidden", "this Host name is not allowed (use a loopback name or an IP)")
        if not origin_allowed(request):
            return problem(403, "forbidden", "writes from web pages of another origin are refused")
        if self._token is not None:
            sent = request.headers.get(TOKEN_HEADER, "").encode()
            if not hmac.compare_digest(sent, self._token):
                return problem(401, "unauthorized", f"send SIDECAR_AUTH_TOKEN in the {TOKEN_HEADER} header")
        return None

    async def _read(self, request: web.Request, limit: int) -> bytes:
        """The body as sent, refused as soon as it passes ``limit`` bytes; 408 past the time limit."""
        if request.content_length is not None and request.content_length > limit:
            raise too_large(limit)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_seconds):
                while True:
                    chunk = await request.content.readany()
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise too_large(limit)
                    chunks.append(chunk)
        except TimeoutError:
            raise RequestProblem(
                408, "request_timeout", f"the body did not arrive within {self.body_seconds:g} s"
            ) from None
        return b"".join(chunks)

    async def _request(self, request: web.Request, found: Route) -> tuple[Answer, int, str]:
        encoding = request.headers.get("Content-Encoding")
        wire_limit = found.body_limit + (GZIP_SLACK_BYTES if encoding else 0)
        header_key = write_key_from_header(request.headers.get("Authorization"))
        body = inflate(await self._read(request, wire_limit), encoding, found.body_limit)
        parsed = parse_body(body)
        shared = envelope(body, parsed, header_key, found.region or self._default_region)
        items = batch_items(parsed) if found.call_type is None else [parsed]
        repeats = repeated_keys(body, parsed, batch=found.call_type is None)
        try:
            answer, recognised = await self._events(items, found.call_type, shared, repeats)
        except SidecarError as error:
            if self._counter is not None:
                self._counter.call_received(found.name, len(items), intake="http")
            return for_error(error), len(items), found.name
        if self._counter is not None:
            # Events recognised as accepted moments ago were counted when they first arrived.
            self._counter.call_received(found.name, len(items) - recognised, intake="http")
        return answer, len(items), found.name

    async def _events(
        self, items: list[Any], call_type: CallType | None, shared: Envelope, repeats: dict[int, FieldViolation]
    ) -> tuple[Answer, int]:
        """The answer, once the accepted events are spooled, and how many events were recognised as spooled.

        ``repeats`` names the events whose JSON repeats a key: they are refused like any other invalid event.
        """
        prepare = self._downstream.prepare
        recent = self._recent
        write_key, region = shared.write_key, shared.region
        observers = self._observers
        now = time.time()
        events: list[Event] = []
        accepted: list[tuple[Event, CallType, list[Warning]]] = []
        refusals: list[Refusal] = []
        sent_ids: list[str] = []
        in_request: set[str] = set()
        recognised = 0
        clock = time.perf_counter
        slice_ends = clock() + SLICE_SECONDS
        for index, item in enumerate(items):
            if clock() > slice_ends:
                await asyncio.sleep(0)
                slice_ends = clock() + SLICE_SECONDS
            message_id = item.get("messageId") if isinstance(item, dict) else None
            message_id = message_id if isinstance(message_id, str) else None
            if message_id is not None and (message_id in in_request or recent.seen(write_key, region, message_id)):
                recognised += 1  # accepted moments ago (a library's retry) or twice in one request: durable already
                continue
            try:
                call = to_call(item, call_type, shared, now, repeats.get(index))
                event, warnings = prepare(call)
            except (InvalidEvent, CredentialsMissing) as error:
                violations = getattr(error, "violations", ()) or (FieldViolation("write_key", str(error)),)
                refusals.append(Refusal(index, message_id, violations, str(error)))
                self._tell_rejected(call_type, item, write_key, error)
                continue
            events.append(event)
            if message_id is not None:
                sent_ids.append(message_id)
                in_request.add(message_id)
            if observers:
                accepted.append((event, call.type, warnings))
        await self._downstream.accept(events)
        recent.remember(write_key, region, sent_ids)
        for observer in observers:
            for event, kind, warnings in accepted:
                observer.accepted(event, kind, warnings)
        return (refused(refusals, len(items)) if refusals else SUCCESS), recognised

    def _tell_rejected(self, call_type: CallType | None, item: Any, write_key: str, error: SidecarError) -> None:
        kind = call_type or (_TYPES.get(item.get("type")) if isinstance(item, dict) else None)
        if kind is None:
            # No readable type: counted as the gRPC Batch counts an item without a call type.
            if self._counter is not None:
                self._counter.call_unreported("unknown", "invalid_argument", 1)
            return
        name = item.get("event") if isinstance(item, dict) else None
        for observer in self._observers:
            observer.rejected(kind, write_key, error, {"event": name if isinstance(name, str) else ""})
