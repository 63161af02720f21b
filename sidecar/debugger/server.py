"""The live debugger: a page that shows events as they pass the sidecar, newest first, like Segment's debugger.

It listens to the pipeline as an intake and a delivery observer. With no page open, an observer call only appends a
tuple of references to a bounded ring buffer (``RING_SIZE`` entries; nothing is parsed, hashed or formatted). While
pages are connected, each one's stream task wakes on new entries, renders at most ``MAX_PER_TICK`` of the newest to
JSON and sends them as server-sent events, then pauses ``TICK_SECONDS`` so that a burst of 50,000 events/s costs a
bounded amount of work (entries skipped that way are counted in a ``skipped`` message).

Routes: ``/`` the page (static HTML and JavaScript, no build step), ``/events`` the SSE stream (the last
``SNAPSHOT_SIZE`` entries first, then live ones), ``/keys`` each write key's state as JSON (ListWriteKeys' view). Write
keys are shown only as their short hash. The page shows customer data, so ``SIDECAR_DEBUGGER_LISTEN`` is off by default
and the sidecar warns when it is not loopback; it answers only loopback Host names, IP literals and
``SIDECAR_DEBUGGER_HOSTS`` (:mod:`sidecar.http_guard`), so that another web page in the same browser cannot read it
through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import orjson
import structlog
from aiohttp import web

from sidecar.api.status import code_of
from sidecar.errors import SidecarError
from sidecar.http_endpoint import HttpEndpoint, is_loopback
from sidecar.http_guard import local_guard
from sidecar.model import Batch, CallType, Event, SpooledEvent, Warning, write_key_hash
from sidecar.send.classify import Delivered, Outcome
from sidecar.validate.limits import MAX_STRING_CHARS

log = structlog.get_logger("sidecar.debugger")

RING_SIZE = 2000
"""Entries kept for pages that connect later; older ones are dropped."""
SNAPSHOT_SIZE = 500
"""Entries a newly connected page receives first."""
MAX_PER_TICK = 500
"""Entries rendered per stream per tick; a burst beyond it is summarised as skipped."""
TICK_SECONDS = 0.1
"""Pause between sends to one page: coalesces bursts into one write (a pacing delay, not a poll)."""
MAX_IDS_SHOWN = 2500
"""Message ids listed per batch entry (a batch holds at most 2,500 events)."""

SHOWN_NAME_CHARS = 200
"""Characters of a refused event's name the page shows; the rest is summarised by its length."""

_SUGGESTION = re.compile(r'send "([^"]+)" instead')

# ring entries: (seq, kind, wall time, *payload); rendered lazily by _render
_Entry = tuple[Any, ...]


def _clip(name: str) -> str:
    if len(name) <= SHOWN_NAME_CHARS:
        return name
    return f"{name[:SHOWN_NAME_CHARS]}… ({len(name):,} characters)"


class Debugger:
    """The debugger page and its event stream; start/stop are idempotent. See the module docstring."""

    def __init__(self, listen: str, allowed_hosts: Iterable[str] = ()) -> None:
        self._ring: deque[_Entry] = deque(maxlen=RING_SIZE)
        self._seq = 0
        self._streams: set[asyncio.Event] = set()
        self._hashes: dict[str, str] = {}
        self._closing = False
        app = web.Application(middlewares=[local_guard(allowed_hosts)])
        app.router.add_get("/", self._page)
        app.router.add_get("/events", self._events)
        app.router.add_get("/keys", self._keys)
        self._key_table: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None
        self._endpoint = HttpEndpoint(app, listen, "SIDECAR_DEBUGGER_LISTEN")
        self.listen = listen

    def show_keys(self, table: Callable[[], Awaitable[list[dict[str, Any]]]]) -> None:
        """Serve each write key's state (by fingerprint) at ``/keys``, from ``table`` (the outcome log's readers)."""
        self._key_table = table

    @property
    def port(self) -> int:
        """The bound TCP port (useful with port 0)."""
        return self._endpoint.port

    async def start(self) -> None:
        """Bind and serve; warn when the address is reachable from other machines."""
        self._closing = False
        await self._endpoint.start()
        if not is_loopback(self.listen):
            log.warning(
                "debugger_not_loopback",
                listen=self.listen,
                detail="the debugger page shows customer events to anyone who can reach this address",
            )
        log.info("debugger_started", listen=self.listen, port=self.port)

    async def stop(self) -> None:
        """End the open streams, then stop serving; idempotent."""
        self._closing = True
        for wake in self._streams:
            wake.set()
        await self._endpoint.stop()

    # --- observers: O(1) and allocation-light; rendering happens in the stream tasks

    def _record(self, entry: _Entry) -> None:
        self._ring.append(entry)
        for wake in self._streams:
            wake.set()

    def accepted(self, event: Event, call_type: CallType, warnings: Sequence[Warning]) -> None:
        """Remember an accepted event."""
        self._seq += 1
        self._record((self._seq, "accepted", event.accepted_at, event, call_type, warnings))

    def rejected(self, call_type: CallType, write_key: str, error: SidecarError, detail: dict[str, Any]) -> None:
        """Remember a refused event with its reason: the key's hash and a clipped name, never the raw fields, which
        may be megabytes each (the ring holds 2,000 entries)."""
        self._seq += 1
        key_hash = self._hash(write_key) if len(write_key) <= MAX_STRING_CHARS else write_key_hash(write_key)
        name = _clip(str(detail.get("event") or ""))
        self._record((self._seq, "rejected", time.time(), call_type, key_hash, error, name))

    def attempt_finished(self, batch: Batch, outcome: Outcome, seconds: float) -> None:
        """Remember one HTTP attempt and which events it carried."""
        self._seq += 1
        self._record((self._seq, "batch", time.time(), batch.shard, batch.events, outcome, seconds))

    def dead_lettered(self, events: Sequence[SpooledEvent], reason: str) -> None:
        """Remember events given up on."""
        self._seq += 1
        self._record((self._seq, "dead_lettered", time.time(), events, reason))

    def rate_limited(self, seconds: float) -> None:
        """Not shown on the page."""

    # --- rendering

    def _hash(self, write_key: str) -> str:
        hashed = self._hashes.get(write_key)
        if hashed is None:
            if len(self._hashes) > 10_000:
                self._hashes.clear()
            hashed = self._hashes[write_key] = write_key_hash(write_key)
        return hashed

    def render(self, entry: _Entry) -> dict[str, Any]:
        """One ring entry as the JSON object the page shows."""
        seq, kind, at = entry[0], entry[1], entry[2]
        base: dict[str, Any] = {"id": seq, "kind": kind, "at": at}
        if kind == "accepted":
            event, call_type, warnings = entry[3], entry[4], entry[5]
            body = orjson.loads(event.payload)
            base.update(
                write_key_hash=self._hash(event.write_key),
                region=event.region.value,
                type=call_type.value,
                name=body.get("event") or body.get("name") or "",
                message_id=event.message_id,
                warnings=[{"code": w.code, "field": w.field, "message": w.message} for w in warnings],
                event=body,
            )
        elif kind == "rejected":
            call_type, key_hash, error, name = entry[3], entry[4], entry[5], entry[6]
            reason = str(error)
            match = _SUGGESTION.search(reason)
            base.update(
                write_key_hash=key_hash,
                type=call_type.value,
                name=name,
                code=code_of(error).name,
                reason=reason,
                suggestion=match.group(1) if match else "",
                violations=[{"field": v.field, "description": v.description} for v in getattr(error, "violations", ())],
            )
        elif kind == "batch":
            shard, events, outcome, seconds = entry[3], entry[4], entry[5], entry[6]
            base.update(
                write_key_hash=self._hash(shard[0]),
                region=shard[1].value,
                status=outcome.status,
                outcome=type(outcome).__name__.lower(),
                delivered=isinstance(outcome, Delivered),
                reason=getattr(outcome, "reason", ""),
                events=len(events),
                seconds=round(seconds, 3),
                message_ids=[e.message_id for e in events[:MAX_IDS_SHOWN]],
            )
        else:
            events, reason = entry[3], entry[4]
            base.update(
                write_key_hash=self._hash(events[0].write_key) if events else "",
                reason=reason,
                events=len(events),
                message_ids=[e.message_id for e in events[:MAX_IDS_SHOWN]],
            )
        return base

    def _encode(self, entries: Iterable[_Entry]) -> bytes:
        parts = []
        for entry in entries:
            parts.append(b"id: %d\nevent: entry\ndata: " % entry[0] + orjson.dumps(self.render(entry)) + b"\n\n")
        return b"".join(parts)

    def _newer_than(self, cursor: int, limit: int) -> tuple[list[_Entry], int]:
        """Up to ``limit`` of the newest entries after ``cursor`` (oldest first), and how many were skipped."""
        newer: list[_Entry] = []
        for entry in reversed(self._ring):
            if entry[0] <= cursor:
                break
            newer.append(entry)
        newer.reverse()
        skipped = max(0, len(newer) - limit)
        return newer[skipped:], skipped + max(0, (self._seq - cursor) - len(newer))

    # --- HTTP

    async def _page(self, request: web.Request) -> web.Response:
        html = importlib.resources.files("sidecar.debugger").joinpath("page.html").read_bytes()
        return web.Response(body=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _keys(self, request: web.Request) -> web.Response:
        table = [] if self._key_table is None else await self._key_table()
        return web.json_response(
            table, dumps=lambda value: orjson.dumps(value).decode(), headers={"Cache-Control": "no-store"}
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        wake = asyncio.Event()
        self._streams.add(wake)
        log.info("debugger_page_connected", pages=len(self._streams))
        try:
            entries, _ = self._newer_than(max(0, self._seq - SNAPSHOT_SIZE), SNAPSHOT_SIZE)
            cursor = self._seq
            await response.write(b"retry: 1000\n\n" + self._encode(entries))
            while not self._closing:
                await wake.wait()
                wake.clear()
                if self._closing:
                    break
                entries, skipped = self._newer_than(cursor, MAX_PER_TICK)
                cursor = self._seq
                payload = self._encode(entries)
                if skipped:
                    payload += b"event: skipped\ndata: %d\n\n" % skipped
                await response.write(payload)
                await asyncio.sleep(TICK_SECONDS)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the page went away
        finally:
            self._streams.discard(wake)
            log.info("debugger_page_disconnected", pages=len(self._streams))
        return response
