"""The debugger page of a real sidecar, configured through its settings, refuses a forged Host (DNS rebinding) and
answers the names SIDECAR_DEBUGGER_HOSTS lists."""

from __future__ import annotations

import aiohttp

from tests.conftest import SidecarFactory


async def test_debugger_hosts_setting_reaches_the_page(sidecar_factory: SidecarFactory) -> None:
    """A rebound name gets 403 on the page and the stream; loopback and a configured name get the page."""
    running = await sidecar_factory(
        SIDECAR_DEBUGGER_LISTEN="127.0.0.1:0", SIDECAR_DEBUGGER_HOSTS="debug.internal, ops.example"
    )
    assert running.app.debugger is not None
    port = running.app.debugger.port
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for path in ("/", "/events"):
            async with session.get(url + path, headers={"Host": f"attacker.example:{port}"}) as response:
                assert response.status == 403, path
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "debug.internal", f"ops.example:{port}"):
            async with session.get(url + "/", headers={"Host": host}) as response:
                assert response.status == 200, host
