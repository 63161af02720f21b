"""Fixtures shared by every suite: real collectors on loopback, a real sidecar (in-process or as a process), and a
guard that fails a test which leaks asyncio tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from sidecar.collector.server import Collector
from tests.fleet.redis_server import RedisServer, running_redis
from tests.support.harness import (
    TEST_ENV,
    Collectors,
    SidecarProcess,
    SidecarUnderTest,
    free_port,
    ready,
    start_sidecar,
)


@pytest.fixture
async def collectors() -> AsyncIterator[Collectors]:
    """A US and an EU collector, each on its own loopback port."""
    pair = Collectors(Collector("us"), Collector("eu"))
    await pair.us.start()
    await pair.eu.start()
    try:
        yield pair
    finally:
        await pair.us.stop()
        await pair.eu.stop()


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    """One US collector on a loopback port (suites that play only Segment's US endpoint)."""
    server = Collector("us")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


SidecarFactory = Callable[..., Awaitable[SidecarUnderTest]]


@pytest.fixture
async def sidecar_factory(collectors: Collectors, tmp_path: Path) -> AsyncIterator[SidecarFactory]:
    """Starts in-process sidecars pointed at the collectors; each is stopped (grace 0) at the end of the test."""
    started: list[SidecarUnderTest] = []

    async def factory(**env: str) -> SidecarUnderTest:
        running = await start_sidecar(collectors, tmp_path / f"spool{len(started)}", env)
        started.append(running)
        return running

    yield factory
    for running in started:
        await running.close()


@pytest.fixture
async def sidecar(sidecar_factory: SidecarFactory) -> SidecarUnderTest:
    """One sidecar with test timings (flush interval 100 ms)."""
    return await sidecar_factory()


@pytest.fixture
async def ready_process(collector: Collector, tmp_path: Path) -> AsyncIterator[SidecarProcess]:
    """A ready sidecar process (its own interpreter) delivering to the collector, on its defaults otherwise."""
    running = SidecarProcess(
        env={
            **TEST_ENV,
            "SIDECAR_ENDPOINT_US": collector.url,
            "SIDECAR_ENDPOINT_EU": collector.url,
            "SIDECAR_SPOOL_DIR": str(tmp_path / "spool"),
        },
        port=free_port(),
        log_path=tmp_path / "sidecar.log",
    )
    async with ready(running):
        yield running


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running after its fixtures are torn down."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [
        t
        for t in asyncio.all_tasks() - before
        if not t.done() and t is not asyncio.current_task() and "grpc" not in repr(t.get_coro())
    ]
    assert not leaked, f"leaked tasks: {leaked}"


def rpc_error(error: BaseException) -> grpc.aio.AioRpcError:
    """Narrow an exception to a gRPC error (for pytest.raises results)."""
    assert isinstance(error, grpc.aio.AioRpcError)
    return error


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, empty Redis on a free loopback port, killed after the test; skips when redis-server is missing
    (fails instead with TEST_REQUIRE_REDIS=1)."""
    folder = tmp_path / "redis"
    folder.mkdir()
    with running_redis(folder) as server:
        yield server
