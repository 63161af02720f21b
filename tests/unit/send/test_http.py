"""The HTTP sender against the real local collector: authorise, then one request, classified; never an exception for
an HTTP or network failure, and never a redirect followed."""

from __future__ import annotations

import socket

from aiohttp import web

from sidecar.collector.server import Collector
from sidecar.model import Batch, Region, SpooledEvent
from sidecar.send.auth import Authorization, BasicAuthenticator
from sidecar.send.classify import Delivered, Retry, Unauthorized
from sidecar.send.http import AuthorizationFailed, HttpSender


def batch(write_key: str = "wk-http", attempts: int = 0) -> Batch:
    """A one-event batch."""
    event = SpooledEvent(
        write_key, Region.US, "m-1", b'{"type":"track","event":"Sent","userId":"u","messageId":"m-1"}', 0.0, seq=1
    )
    return Batch((write_key, Region.US), [event], len(event.payload) + 1, attempts)


async def test_an_authorised_batch_is_delivered_with_basic_auth(collector: Collector) -> None:
    """authorize() gives the Basic credentials; send() makes one request, which the collector takes as the key's."""
    sender = HttpSender(dict.fromkeys(Region, collector.url), BasicAuthenticator(), 5.0)
    await sender.start()
    try:
        authorization = await sender.authorize(batch())
        assert isinstance(authorization, Authorization)
        outcome = await sender.send(batch(), authorization)
    finally:
        await sender.stop()
    assert isinstance(outcome, Delivered)
    [request] = collector.store.requests
    assert request.write_key == "wk-http" and [e["messageId"] for e in request.events] == ["m-1"]


async def test_a_throttled_attempt_is_a_retry_with_the_servers_delay(collector: Collector) -> None:
    """A 429 with Retry-After comes back as a Retry carrying that delay, not as an exception."""
    collector.faults.throttle_next = 1
    collector.faults.retry_after = 3
    sender = HttpSender(dict.fromkeys(Region, collector.url), BasicAuthenticator(), 5.0)
    await sender.start()
    try:
        authorization = await sender.authorize(batch())
        assert isinstance(authorization, Authorization)
        outcome = await sender.send(batch(), authorization)
    finally:
        await sender.stop()
    assert isinstance(outcome, Retry) and outcome.status == 429 and outcome.after == 3.0


async def test_a_revoked_key_is_unauthorized(collector: Collector) -> None:
    """A 401 for a Basic key is Unauthorized (the key is parked), with nothing to renew."""
    collector.faults.revoked_write_keys = {"wk-revoked"}
    sender = HttpSender(dict.fromkeys(Region, collector.url), BasicAuthenticator(), 5.0)
    await sender.start()
    try:
        refused = batch("wk-revoked")
        authorization = await sender.authorize(refused)
        assert isinstance(authorization, Authorization)
        outcome = await sender.send(refused, authorization)
    finally:
        await sender.stop()
    assert isinstance(outcome, Unauthorized)
    assert refused.auth_renewals == 0, "the sender does not write to the batch"


async def test_credentials_that_cannot_be_had_are_an_outcome_and_nothing_is_sent(collector: Collector) -> None:
    """An authenticator that fails (a token server down) makes authorize() answer a Retry; no request is made."""

    class Failing(BasicAuthenticator):
        """No token can be had."""

        async def authorize(self, write_key: str, region: Region) -> Authorization:
            """Fail as a token server that is down does."""
            raise AuthorizationFailed(Retry("token server unreachable", 2.0))

    sender = HttpSender(dict.fromkeys(Region, collector.url), Failing(), 5.0)
    await sender.start()
    try:
        outcome = await sender.authorize(batch())
    finally:
        await sender.stop()
    assert isinstance(outcome, Retry) and outcome.after == 2.0
    assert collector.store.requests == []


async def test_an_unreachable_endpoint_is_a_retry() -> None:
    """A refused connection is classified (Retry with no status), never raised."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = HttpSender(dict.fromkeys(Region, f"http://127.0.0.1:{port}"), BasicAuthenticator(), 2.0)
    await sender.start()
    try:
        authorization = await sender.authorize(batch())
        assert isinstance(authorization, Authorization)
        outcome = await sender.send(batch(), authorization)
    finally:
        await sender.stop()
    assert isinstance(outcome, Retry) and outcome.status == 0


async def test_a_redirect_is_not_followed() -> None:
    """A 307 to another origin comes back as a Retry; the other origin receives nothing."""
    elsewhere_hits = 0

    async def elsewhere(_: web.Request) -> web.Response:
        nonlocal elsewhere_hits
        elsewhere_hits += 1
        return web.json_response({"success": True})

    async def redirect(_: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": f"{other_url}/v1/batch"})

    runners = []
    urls = []
    for handler in (elsewhere, redirect):
        app = web.Application()
        app.router.add_post("/v1/batch", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}")  # type: ignore[union-attr]
    other_url, endpoint = urls
    sender = HttpSender(dict.fromkeys(Region, endpoint), BasicAuthenticator(), 5.0)
    await sender.start()
    try:
        authorization = await sender.authorize(batch())
        assert isinstance(authorization, Authorization)
        outcome = await sender.send(batch(), authorization)
    finally:
        await sender.stop()
        for runner in runners:
            await runner.cleanup()
    assert isinstance(outcome, Retry) and outcome.status == 307
    assert elsewhere_hits == 0


async def test_stop_without_start_and_twice_is_safe() -> None:
    """The lifecycle: stop() before start() and twice does nothing."""
    sender = HttpSender(dict.fromkeys(Region, "http://127.0.0.1:9"), BasicAuthenticator(), 1.0)
    await sender.stop()
    await sender.start()
    await sender.stop()
    await sender.stop()
