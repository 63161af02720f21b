"""The sender chain: one limiter grant per attempt, redirects not followed, the terminal reached through each link."""

from __future__ import annotations

import asyncio

from aiohttp import web

from sidecar.collector.server import Collector
from sidecar.model import Batch, Region, SpooledEvent
from sidecar.send.auth import Authorization, BasicAuthenticator
from sidecar.send.chain import build_segment_chain, build_sender_chain
from sidecar.send.classify import Delivered, Outcome, Retry
from sidecar.send.ratelimit import PacedLimiter


class CountingLimiter(PacedLimiter):
    """A real paced limiter that counts its grants."""

    def __init__(self) -> None:
        super().__init__(1000)
        self.grants = 0

    async def acquire(self) -> None:
        """Count, then pace."""
        self.grants += 1
        await super().acquire()


def batch(write_key: str = "wk-chain") -> Batch:
    """A one-event batch."""
    event = SpooledEvent(
        write_key, Region.US, "m-1", b'{"type":"track","event":"Chained","userId":"u","messageId":"m-1"}', 0.0, seq=1
    )
    return Batch((write_key, Region.US), [event], len(event.payload) + 1)


async def test_each_attempt_takes_exactly_one_grant(collector: Collector) -> None:
    """Three attempts, a retried one among them, take three grants; grant listeners hear each."""
    limiter = CountingLimiter()
    chain = build_segment_chain(dict.fromkeys(Region, collector.url), BasicAuthenticator(), 5.0, limiter)
    heard: list[int] = []
    chain.on_grant(lambda: heard.append(1))
    await chain.start()
    try:
        collector.faults.throttle_next = 1
        outcomes = [await chain.send(batch()) for _ in range(3)]
    finally:
        await chain.stop()
    assert isinstance(outcomes[0], Retry) and all(isinstance(o, Delivered) for o in outcomes[1:])
    assert limiter.grants == 3 and len(heard) == 3 and chain.paced


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
    chain = build_segment_chain(dict.fromkeys(Region, endpoint), BasicAuthenticator(), 5.0, CountingLimiter())
    await chain.start()
    try:
        outcome = await chain.send(batch())
    finally:
        await chain.stop()
        for runner in runners:
            await runner.cleanup()
    assert isinstance(outcome, Retry) and outcome.status == 307
    assert elsewhere_hits == 0


async def test_a_terminal_without_a_limiter_is_called_directly() -> None:
    """limiter=None (a forwarding terminal): no limiter link, the terminal gets the batch."""

    class Terminal:
        """A terminal that records what it sends."""

        def __init__(self) -> None:
            self.sent: list[Batch] = []

        async def start(self) -> None:
            """Nothing to start."""

        async def stop(self) -> None:
            """Nothing to stop."""

        async def send(self, sent: Batch) -> Outcome:
            """Record and accept."""
            self.sent.append(sent)
            return Delivered(200)

    terminal = Terminal()
    chain = build_sender_chain(terminal, None)
    assert not chain.paced
    assert isinstance(await chain.send(batch()), Delivered) and len(terminal.sent) == 1


async def test_attempts_held_after_their_grants_take_fresh_ones_and_keep_the_pace(collector: Collector) -> None:
    """30 attempts whose authorisation holds them until every one has its grant (an OAuth token server that answers
    all its waiting requests at once) reach the collector no faster than the limiter paces (cap 20: at most 20 in any
    1-s window): each takes a fresh grant before its request. Without that, all 30 arrive within milliseconds."""
    released = asyncio.Event()

    class HeldAuthenticator(BasicAuthenticator):
        """Basic auth that answers only once ``released`` is set."""

        async def authorize(self, write_key: str, region: Region) -> Authorization:
            """Wait for the release, then Basic."""
            await released.wait()
            return await super().authorize(write_key, region)

    limiter = PacedLimiter(20)
    chain = build_segment_chain(dict.fromkeys(Region, collector.url), HeldAuthenticator(), 5.0, limiter)
    granted: list[int] = []
    all_granted = asyncio.Event()

    def heard_grant() -> None:
        granted.append(1)
        if len(granted) == 30:
            all_granted.set()

    chain.on_grant(heard_grant)
    await chain.start()
    try:
        attempts = [asyncio.ensure_future(chain.send(batch(f"wk-held-{n}"))) for n in range(30)]
        async with asyncio.timeout(10):
            await all_granted.wait()
        await asyncio.sleep(0.2)  # the last grant is late too
        released.set()
        outcomes = await asyncio.gather(*attempts)
    finally:
        await chain.stop()
    assert all(isinstance(outcome, Delivered) for outcome in outcomes)
    assert len(granted) == 30, "grant listeners hear one grant per attempt"
    assert len(collector.store.requests) == 30
    assert collector.store.max_requests_in_window(1.0) <= 20
