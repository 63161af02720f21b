"""The debugger page and the local collector against another web page in the same browser: a forged Host (DNS
rebinding) and cross-origin writes are refused, over real sockets; the tools' own requests still work."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from sidecar.collector.server import Collector
from sidecar.debugger import Debugger
from sidecar.http_guard import host_allowed, host_name

EVIL = "evil.example"


def test_host_names_that_cannot_be_rebound_are_allowed() -> None:
    """localhost, *.localhost and IP literals (with or without a port) are allowed; other names only if configured."""
    for host in ("localhost", "localhost:9464", "app.localhost:1", "127.0.0.1:80", "[::1]:9464", "10.1.2.3", "::1"):
        assert host_allowed(host), host
    for host in (EVIL, f"{EVIL}:9464", "localhost.evil.example", "127.0.0.1.nip.io"):
        assert not host_allowed(host), host
    assert host_allowed("Sidecar.Internal:8080", ["sidecar.internal"])
    assert host_name("[::1]:80") == "::1" and host_name("Example.COM.:1") == "example.com"


@pytest.fixture
async def debugger() -> AsyncIterator[Debugger]:
    """A started debugger on loopback, allowing one configured name."""
    page = Debugger("127.0.0.1:0", allowed_hosts=["debug.internal"])
    await page.start()
    yield page
    await page.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client."""
    async with aiohttp.ClientSession() as client:
        yield client


async def test_debugger_answers_loopback_and_configured_hosts_only(
    debugger: Debugger, session: aiohttp.ClientSession
) -> None:
    """The page (and so its stream) is refused to a rebound name, served to loopback, an IP and the configured one."""
    url = f"http://127.0.0.1:{debugger.port}/"
    async with session.get(url, headers={"Host": f"{EVIL}:{debugger.port}"}) as response:
        assert response.status == 403
        assert "segment" not in (await response.text()).lower()
    async with session.get(url + "events", headers={"Host": EVIL}) as response:
        assert response.status == 403
    for host in (f"localhost:{debugger.port}", f"127.0.0.1:{debugger.port}", "debug.internal"):
        async with session.get(url, headers={"Host": host}) as response:
            assert response.status == 200, host


async def test_collector_refuses_a_rebound_host_on_every_route(
    collector: Collector, session: aiohttp.ClientSession
) -> None:
    """Admin reads, the live page and /v1/batch answer 403 to a foreign Host, and 200 to the collector's own."""
    for path in ("/_collector/events", "/_collector/requests", "/_collector/faults", "/"):
        async with session.get(collector.url + path, headers={"Host": EVIL}) as response:
            assert response.status == 403, path
        async with session.get(collector.url + path) as response:
            assert response.status == 200, path


def batch_body() -> bytes:
    """One valid track event."""
    return json.dumps({"batch": [{"type": "track", "event": "E", "userId": "u", "messageId": "m1"}]}).encode()


BASIC = {"Authorization": "Basic " + base64.b64encode(b"wk-guard:").decode(), "Content-Type": "application/json"}


async def test_collector_refuses_cross_origin_writes(collector: Collector, session: aiohttp.ClientSession) -> None:
    """A POST or DELETE from another origin (Origin or Sec-Fetch-Site) changes nothing; same-origin and non-browser
    clients (no Origin) still write."""
    faults = json.dumps({"throttle_next": 5})
    for headers in ({"Origin": f"http://{EVIL}"}, {"Origin": "http://127.0.0.1:1"}, {"Sec-Fetch-Site": "cross-site"}):
        async with session.post(collector.url + "/_collector/faults", data=faults, headers=headers) as response:
            assert response.status == 403, headers
        async with session.delete(collector.url + "/_collector/faults", headers=headers) as response:
            assert response.status == 403, headers
        async with session.post(collector.url + "/_collector/reset", headers=headers) as response:
            assert response.status == 403, headers
        async with session.post(collector.url + "/v1/batch", data=batch_body(), headers={**BASIC, **headers}) as r:
            assert r.status == 403, headers
    assert collector.faults.throttle_next == 0, "no fault was injected"
    assert collector.store.requests == [], "no refused write reached the collector"
    async with session.post(collector.url + "/v1/batch", data=batch_body(), headers=BASIC) as response:
        assert response.status == 200
    async with session.post(collector.url + "/_collector/reset", headers={"Origin": collector.url}) as response:
        assert response.status == 200
    assert collector.store.requests == []


async def test_collector_answers_a_configured_host() -> None:
    """A collector started with allowed_hosts answers that name (a container's service name, say)."""
    server = Collector("us", allowed_hosts=["collector.test"])
    await server.start()
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(server.url + "/_collector/events", headers={"Host": "collector.test:80"}) as reply:
                assert reply.status == 200
            async with client.get(server.url + "/_collector/events", headers={"Host": EVIL}) as reply:
                assert reply.status == 403
    finally:
        await server.stop()
