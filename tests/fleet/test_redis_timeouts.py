"""Sidecars whose Redis calls time out, against a real Redis, measured as grant times (a sender starts its request as
soon as the limiter grants it): the fleet stays within cap + 20% in any one-second window (docs/fleet.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from sidecar.collector.store import max_requests_in_window
from sidecar.send._fleet_budget import CONTRACT_EXCESS
from sidecar.send.fleet import RedisLimiter
from tests.fleet.redis_server import RedisServer

pytestmark = pytest.mark.slow

CAP = 10
FLEET = 3
ALLOWED = int((1 + CONTRACT_EXCESS) * CAP)
"""The contract's bound: at most 12 request starts in any one-second window at a cap of 10."""


async def drive(limiters: list[RedisLimiter], until: float, grants: list[tuple[float, int]]) -> None:
    """Two workers per limiter acquire in a loop until ``until``, recording (grant time, limiter index)."""

    async def worker(index: int) -> None:
        limiter = limiters[index]
        while time.monotonic() < until:
            await limiter.acquire()
            grants.append((time.monotonic(), index))

    async with asyncio.TaskGroup() as group:
        for index in range(len(limiters)):
            for _ in range(2):
                group.create_task(worker(index))


@contextlib.asynccontextmanager
async def limiters(urls: list[str]) -> AsyncIterator[list[RedisLimiter]]:
    """One started limiter per URL, all on one budget (cap 10, fleet size 3), stopped on exit."""
    made = [RedisLimiter(url, "fleet-timeouts", CAP, FLEET) for url in urls]
    for limiter in made:
        await limiter.start()
    try:
        yield made
    finally:
        for limiter in made:
            await limiter.stop()


class StallingProxy:
    """A TCP proxy to Redis for one sidecar: while ``stalled``, bytes from Redis are held back (its calls time out,
    its probes too), then delivered when the stall ends, like a congested or partitioned network path."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._server: asyncio.Server | None = None
        self._resume = asyncio.Event()
        self._resume.set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The redis:// URL of the proxy."""
        assert self._server is not None
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    def stall(self, stalled: bool) -> None:
        """Hold back (True) or pass (False) Redis's replies."""
        if stalled:
            self._resume.clear()
        else:
            self._resume.set()

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        """Close the listener and every piped connection."""
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._port)
        pipes = [
            asyncio.create_task(self._pipe(client_reader, upstream_writer, gated=False)),
            asyncio.create_task(self._pipe(upstream_reader, client_writer, gated=True)),
        ]
        self._tasks.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._tasks.difference_update(pipes)
            client_writer.close()
            upstream_writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, gated: bool) -> None:
        while data := await reader.read(65536):
            if gated:
                await self._resume.wait()
            writer.write(data)
            await writer.drain()


async def test_a_paused_redis_keeps_the_fleet_within_the_lease_bound(redis_server: RedisServer) -> None:
    """Redis stopped with SIGSTOP for 1.5 s under full load: every sidecar falls back to cap / 3 and comes back
    through probation; no one-second window holds more than cap + 20% (12 at a cap of 10)."""
    grants: list[tuple[float, int]] = []
    async with limiters([redis_server.url] * FLEET) as fleet:
        began = time.monotonic()
        load = asyncio.create_task(drive(fleet, began + 7.0, grants))
        await asyncio.sleep(2.0)  # steady state on Redis before the pause
        assert redis_server.process is not None
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(1.5)
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        await load
        assert all(limiter.outages >= 1 for limiter in fleet), [limiter.outages for limiter in fleet]
    worst = max_requests_in_window([at for at, _ in grants])
    print(f"worst window: {worst} starts; contract {ALLOWED}")
    assert worst <= ALLOWED, f"{worst} starts in one second (allowed {ALLOWED})"


async def test_one_sidecar_cut_off_from_redis_keeps_only_its_share(redis_server: RedisServer) -> None:
    """One sidecar's Redis calls time out (its path to Redis stalls for 3 s) while the other two reach Redis: the two
    stop counting its share once its lease could have ended, and it paces on that share only after the same point,
    so no one-second window holds more than cap + 20% (12 at a cap of 10)."""
    proxy = StallingProxy(redis_server.port)
    await proxy.start()
    grants: list[tuple[float, int]] = []
    try:
        async with limiters([proxy.url, redis_server.url, redis_server.url]) as fleet:
            began = time.monotonic()
            load = asyncio.create_task(drive(fleet, began + 7.0, grants))
            await asyncio.sleep(2.0)
            proxy.stall(True)
            try:
                await asyncio.sleep(3.0)
            finally:
                proxy.stall(False)
            await load
            assert fleet[0].outages >= 1 and fleet[1].outages == 0 and fleet[2].outages == 0
    finally:
        await proxy.stop()
    worst = max_requests_in_window([at for at, _ in grants])
    print(f"worst window: {worst} starts; contract {ALLOWED}")
    assert worst <= ALLOWED, f"{worst} starts in one second (allowed {ALLOWED})"
