"""The collector's live page and its server-sent events stream, read by a real client."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from sidecar.collector import Collector, ReceivedRequest
from sidecar.collector.page import recent_rows, rows
from sidecar.model import write_key_hash

KEY = "wk_live_page_secret_1"


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    """A started EU collector, stopped after the test (the page names its region)."""
    server = Collector("eu")
    await server.start()
    yield server
    await server.stop()


async def send(session: aiohttp.ClientSession, collector: Collector, message_id: str, event: str) -> int:
    """POST one track event with :data:`KEY`; return the status."""
    body = {"batch": [{"type": "track", "userId": "user-9", "event": event, "messageId": message_id}]}
    auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
    async with session.post(collector.url + "/v1/batch", json=body, headers=auth) as response:
        return response.status


async def next_row(response: aiohttp.ClientResponse) -> dict[str, object]:
    """The next ``data:`` message of a server-sent events stream, parsed."""
    while True:
        line = await asyncio.wait_for(response.content.readline(), 5)
        assert line, "the stream ended"
        if line.startswith(b"data: "):
            row: dict[str, object] = orjson.loads(line[6:])
            return row


async def test_page_is_html_without_keys(collector: Collector) -> None:
    """``GET /`` serves the page, which names the region and uses the stream."""
    async with aiohttp.ClientSession() as session:
        await send(session, collector, "m0", "Email Delivered")
        async with session.get(collector.url + "/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            html = await response.text()
    assert "/_collector/stream" in html
    assert "region EU" in html
    assert KEY not in html


async def test_stream_sends_history_then_live_rows(collector: Collector) -> None:
    """A new listener gets past rows first, then each arriving event, with the key only as its hash."""
    async with aiohttp.ClientSession() as session:
        await send(session, collector, "m1", "Email Delivered")
        async with session.get(collector.url + "/_collector/stream") as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"
            first = await next_row(stream)
            assert (first["messageId"], first["name"], first["status"]) == ("m1", "Email Delivered", 200)
            await send(session, collector, "m2", "Email Opened")
            second = await next_row(stream)
            assert (second["messageId"], second["userId"], second["type"]) == ("m2", "user-9", "track")
            assert second["write_key_hash"] == write_key_hash(KEY)
            assert KEY not in orjson.dumps([first, second]).decode()


async def test_stream_ends_when_the_collector_stops(collector: Collector) -> None:
    """Stopping the collector ends open streams promptly instead of waiting for them."""
    async with aiohttp.ClientSession() as session, session.get(collector.url + "/_collector/stream") as stream:
        await collector.stop()
        assert await asyncio.wait_for(stream.content.read(), 5) == b""


def test_rows_show_refused_requests_and_recent_history() -> None:
    """A request without events still shows one row; ``recent_rows`` keeps the newest rows, oldest first."""
    refused = ReceivedRequest(started_at=1.0, status=401, write_key=KEY, code="unauthorized")
    assert rows(refused, "us") == [
        {
            "region": "us",
            "status": 401,
            "code": "unauthorized",
            "write_key_hash": write_key_hash(KEY),
            "type": None,
            "name": None,
            "userId": None,
            "messageId": None,
            "timestamp": None,
        }
    ]
    collector = Collector()
    for i in range(5):
        event = {"type": "identify", "userId": f"u{i}", "messageId": str(i)}
        collector.store.record(ReceivedRequest(started_at=i, status=200, write_key=KEY, events=[event]))
    assert [row["messageId"] for row in recent_rows(collector.store, "us", limit=3)] == ["2", "3", "4"]
