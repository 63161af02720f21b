"""The ``/metrics`` HTTP endpoint of one :class:`~sidecar.metrics.Metrics`."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sidecar.http_endpoint import HttpEndpoint
from sidecar.metrics._families import Metrics


class MetricsServer:
    """Serves ``/metrics`` for one :class:`Metrics` on ``SIDECAR_METRICS_LISTEN``."""

    def __init__(self, metrics: Metrics, listen: str) -> None:
        self.metrics = metrics
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/", self._index)
        self._endpoint = HttpEndpoint(app, listen, "SIDECAR_METRICS_LISTEN")

    @property
    def port(self) -> int:
        """The bound TCP port (useful with port 0)."""
        return self._endpoint.port

    async def start(self) -> None:
        """Bind and serve."""
        await self._endpoint.start()

    async def stop(self) -> None:
        """Stop serving; idempotent."""
        await self._endpoint.stop()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text="segment-sidecar: metrics at /metrics\n")
