"""Fixtures of the fleet suite: a real ``redis-server`` per test (see :mod:`redis_server`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.redis_server import RedisServer, running_redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, empty Redis on a free loopback port, killed after the test; skips when redis-server is missing."""
    folder = tmp_path / "redis"
    folder.mkdir()
    with running_redis(folder) as server:
        yield server
