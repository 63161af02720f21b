"""One aiohttp application on one listen address, for the operations pages (``/metrics``, the debugger).

A listen address the process cannot bind (taken, or a host it does not have) is a start-up error that names the
setting behind it: :class:`~sidecar.errors.ConfigError`, which the entrypoint turns into exit status 2.
"""

from __future__ import annotations

from aiohttp import web

from sidecar.config import listens_on_loopback
from sidecar.errors import ConfigError


def is_loopback(listen: str) -> bool:
    """Whether a ``host:port`` (or ``unix:`` path) listen address is reachable only from this machine, decided by the
    addresses it binds as the gRPC listener's guard decides (:func:`sidecar.config.listens_on_loopback`)."""
    return listens_on_loopback(listen)


class HttpEndpoint:
    """An aiohttp application served on one ``host:port`` or ``unix:/path``; start and stop are idempotent."""

    def __init__(self, app: web.Application, listen: str, variable: str) -> None:
        self._app = app
        self._listen = listen
        self._variable = variable
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        """Bind and serve; raises ConfigError naming the setting when the address is unusable (a port in use)."""
        if self._runner is not None:
            return
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site: web.BaseSite
        if self._listen.startswith("unix:"):
            site = web.UnixSite(runner, self._listen.removeprefix("unix:"))
        else:
            host, _, port = self._listen.rpartition(":")
            site = web.TCPSite(runner, host.strip("[]"), int(port), reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            problem = f"{self._variable}: cannot listen on {self._listen}: {exc.strerror or exc}"
            raise ConfigError([problem]) from exc
        self._runner = runner
        if not self._listen.startswith("unix:"):
            # runner.addresses: the public list of bound socket names, (host, port, ...) for TCP.
            self.port = next((int(address[1]) for address in runner.addresses if isinstance(address, tuple)), 0)

    async def stop(self) -> None:
        """Close the listener and finish open requests (at most a second)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
