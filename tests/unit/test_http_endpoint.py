"""The operations pages' listener: the bound port from aiohttp's public API, a taken port a ConfigError naming the
setting, and an idempotent lifecycle."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from aiohttp import web

from sidecar.errors import ConfigError
from sidecar.http_endpoint import HttpEndpoint


def hello_app() -> web.Application:
    """An app answering GET / with ``hello``."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    return app


async def test_port_zero_learns_the_bound_port_and_serves() -> None:
    """Started on port 0, the endpoint knows its port and serves on it; stop is idempotent and safe before start."""
    endpoint = HttpEndpoint(hello_app(), "127.0.0.1:0", "SIDECAR_TEST_LISTEN")
    await endpoint.stop()
    await endpoint.start()
    await endpoint.start()
    try:
        assert endpoint.port > 0
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{endpoint.port}/") as reply:
            assert await reply.text() == "hello"
    finally:
        await endpoint.stop()
        await endpoint.stop()


async def test_a_taken_port_is_a_config_error_naming_the_variable() -> None:
    """Binding a port someone listens on raises ConfigError naming the variable and the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoint = HttpEndpoint(hello_app(), f"127.0.0.1:{port}", "SIDECAR_METRICS_LISTEN")
        with pytest.raises(ConfigError) as caught:
            await endpoint.start()
    assert caught.value.problems[0].startswith(f"SIDECAR_METRICS_LISTEN: cannot listen on 127.0.0.1:{port}")
    await endpoint.stop()
