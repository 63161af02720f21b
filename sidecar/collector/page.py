"""The collector's live page: events as they arrive, newest first, the way Segment's debugger shows a source.

``GET /`` serves one self-contained HTML page; it listens to ``GET /_collector/stream``, a server-sent events stream
whose every message is one :func:`rows` entry as JSON. A new listener first gets the most recent rows, then each
arrival. Write keys appear only as :func:`sidecar.model.write_key_hash`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from sidecar.collector.store import ReceivedRequest, Store

HISTORY_ROWS = 200
"""How many recent rows a new page receives before the live ones."""
_KEEPALIVE_SECONDS = 15.0
_QUEUE_ROWS = 10_000
"""A listener that falls this far behind misses rows rather than holding the collector's memory."""


def rows(received: ReceivedRequest, region: str) -> list[dict[str, Any]]:
    """One display row per event of a request (or one row for a request with no events), safe to show anyone."""
    base = {
        "region": region,
        "status": received.status,
        "code": received.code,
        "write_key_hash": received.write_key_hash,
    }
    if not received.events:
        return [{**base, "type": None, "name": None, "userId": None, "messageId": None, "timestamp": None}]
    return [
        {
            **base,
            "type": event.get("type"),
            "name": event.get("event") or event.get("name") or event.get("groupId") or event.get("previousId"),
            "userId": event.get("userId") or event.get("anonymousId"),
            "messageId": event.get("messageId"),
            "timestamp": event.get("timestamp"),
        }
        for event in received.events
    ]


def recent_rows(store: Store, region: str, limit: int = HISTORY_ROWS) -> list[dict[str, Any]]:
    """The last ``limit`` rows, oldest first, without walking the whole store."""
    found: deque[dict[str, Any]] = deque()
    for received in reversed(store.requests):
        for row in reversed(rows(received, region)):
            found.appendleft(row)
            if len(found) >= limit:
                return list(found)
    return list(found)


def add_page_routes(app: web.Application, store: Store, region: str) -> None:
    """Mount ``GET /`` (the page) and ``GET /_collector/stream`` (its server-sent events) on ``app``."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE_HTML.replace("{{region}}", region.upper()), content_type="text/html")

    async def stream(request: web.Request) -> web.StreamResponse:
        queue: asyncio.Queue[ReceivedRequest | None] = asyncio.Queue(_QUEUE_ROWS)

        def on_arrival(received: ReceivedRequest | None) -> None:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(received)

        unsubscribe = store.subscribe(on_arrival)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        try:
            await response.prepare(request)
            for row in recent_rows(store, region):
                await response.write(_message(row))
            while True:
                try:
                    received = await asyncio.wait_for(queue.get(), _KEEPALIVE_SECONDS)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                if received is None:  # the collector is stopping
                    break
                for row in rows(received, region):
                    await response.write(_message(row))
        except ConnectionResetError:
            pass  # the browser went away
        finally:
            unsubscribe()
        return response

    app.router.add_get("/", page)
    app.router.add_get("/_collector/stream", stream)


def _message(row: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(row) + b"\n\n"


PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>segment-sidecar collector ({{region}})</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.2em; }
  #state { color: #888; font-weight: normal; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #eee; }
  th { background: #f6f6f6; }
  td.mono { font-family: ui-monospace, monospace; font-size: 12px; }
  tr.refused td { color: #b00020; }
  .type { font-weight: 600; text-transform: capitalize; }
</style>
</head>
<body>
<h1>Segment collector, region {{region}} <span id="state">connecting...</span></h1>
<p><span id="count">0</span> rows, newest first. Write keys are shown as short hashes.</p>
<table>
<thead><tr><th>Status</th><th>Type</th><th>Event / name</th><th>User</th><th>Write key</th>
<th>Message id</th><th>Timestamp</th></tr></thead>
<tbody id="rows"></tbody>
</table>
<script>
const body = document.getElementById("rows");
const count = document.getElementById("count");
const state = document.getElementById("state");
const MAX_ROWS = 1000;
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
}
const source = new EventSource("/_collector/stream");
source.onopen = () => { state.textContent = "live"; };
source.onerror = () => { state.textContent = "disconnected, retrying..."; };
source.onmessage = (message) => {
  const row = JSON.parse(message.data);
  const tr = document.createElement("tr");
  if (row.status < 200 || row.status >= 300) tr.className = "refused";
  cell(tr, row.status === 0 ? "reset" : row.status + (row.code ? " " + row.code : ""));
  cell(tr, row.type, "type");
  cell(tr, row.name);
  cell(tr, row.userId, "mono");
  cell(tr, row.write_key_hash, "mono");
  cell(tr, row.messageId, "mono");
  cell(tr, row.timestamp, "mono");
  body.insertBefore(tr, body.firstChild);
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  count.textContent = body.rows.length;
};
</script>
</body>
</html>
"""
