"""The gateway list of ``SIDECAR_FORWARD_TO``: fixed addresses, and ``dns:///name:port`` names resolved again and
again, as a Kubernetes headless service gives one address per ready gateway pod.

Each entry is either ``host:port`` (used as given; gRPC resolves a host name itself) or ``dns:///name:port``, which is
expanded into one ``address:port`` per A/AAAA record every ``SIDECAR_FORWARD_RESOLVE_INTERVAL``. A failed lookup keeps
the addresses it gave last (a DNS hiccup must not empty the list and park every key); a name that never resolved
contributes nothing until it does. The list handed on is sorted and de-duplicated, so that every edge that sees the
same records ranks the same way (:mod:`sidecar.forward.routing`). The re-resolving loop runs under a
:class:`~sidecar.tasks.Supervisor` (unit ``forward.resolver``): anything it raises is logged, reported (health
NOT_SERVING) and the loop restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Sequence

import structlog

from sidecar.tasks import Supervision, Supervisor

log = structlog.get_logger("sidecar.forward")

DNS_PREFIX = "dns:///"

Lookup = Callable[[str, int], Awaitable[list[str]]]
"""(name, port) -> the addresses the name resolves to (raises OSError when it does not)."""


async def system_lookup(name: str, port: int) -> list[str]:
    """Resolve with the system resolver (``getaddrinfo``, TCP): every A and AAAA record."""
    infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def format_address(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GatewayList:
    """Keeps the current gateway addresses; ``on_change`` is told every new list."""

    def __init__(
        self,
        entries: Sequence[str],
        interval: float,
        on_change: Callable[[tuple[str, ...]], None],
        lookup: Lookup = system_lookup,
        supervision: Supervision | None = None,
    ) -> None:
        self._static = [entry for entry in entries if not entry.startswith(DNS_PREFIX)]
        self._names: list[tuple[str, int]] = []
        for entry in entries:
            if entry.startswith(DNS_PREFIX):
                name, _, port = entry.removeprefix(DNS_PREFIX).rpartition(":")
                self._names.append((name, int(port)))
        self._interval = interval
        self._on_change = on_change
        self._lookup = lookup
        self._resolved: dict[tuple[str, int], list[str]] = {}
        self._supervisor = Supervisor("forward", supervision=supervision)
        self._running = False
        self.current: tuple[str, ...] = ()

    async def start(self) -> None:
        """Resolve once (bounded: a slow DNS server does not hold start-up), then keep re-resolving."""
        if self._running:
            return
        self._running = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self.refresh()
        self._publish()
        if self._names:
            await self._supervisor.start()
            self._supervisor.keep("resolver", self._loop)

    async def stop(self) -> None:
        """Stop re-resolving; idempotent."""
        self._running = False
        await self._supervisor.stop()

    @property
    def supervisor(self) -> Supervisor:
        """The supervisor of the re-resolving loop."""
        return self._supervisor

    async def refresh(self) -> None:
        """Resolve every DNS name once; keep the last answer of a name that fails now."""
        for name, port in self._names:
            try:
                addresses = await self._lookup(name, port)
            except OSError as exc:
                kept = len(self._resolved.get((name, port), []))
                log.warning("gateway_lookup_failed", name=name, reason=str(exc), kept=kept)
                continue
            self._resolved[(name, port)] = [format_address(address, port) for address in addresses]
        self._publish()

    def _publish(self) -> None:
        found = {*self._static}
        for addresses in self._resolved.values():
            found.update(addresses)
        new = tuple(sorted(found))
        if new != self.current:
            self.current = new
            log.info("gateways_changed", gateways=list(new))
            self._on_change(new)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh()
            self._supervisor.report("resolver", None)
