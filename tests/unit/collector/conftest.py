"""Fixtures of the collector's tests: a started collector and a plain HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from sidecar.collector.server import Collector


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    """A started US collector on a free port, stopped after the test."""
    server = Collector("us")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client."""
    async with aiohttp.ClientSession() as client:
        yield client
