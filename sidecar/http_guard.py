"""A guard for the local HTTP pages (the debugger, the collector) against other web pages open in the same browser.

Two attacks, two checks, both answered ``403`` before any handler runs:

* **DNS rebinding**: a page at ``http://evil.example`` makes its name resolve to 127.0.0.1 and then reads the page as
  same-origin. Its requests carry ``Host: evil.example``, so only Host names that cannot be rebound are answered:
  ``localhost`` (and ``*.localhost``), IP literals (an address is not a name an attacker controls) and the names
  configured (``SIDECAR_DEBUGGER_HOSTS``; the collector's ``--allow-host``).
* **Cross-origin writes**: a page anywhere may POST a form or a ``fetch(..., {mode: "no-cors"})`` to a loopback
  port without reading the answer. Browsers mark such requests with ``Origin`` (and ``Sec-Fetch-Site``), so a
  ``POST``/``PUT``/``PATCH``/``DELETE`` whose ``Origin`` is not the server's own origin, or that a browser labels
  ``cross-site``, is refused. Clients that are not browsers (the sidecar, curl, the SDKs) send no ``Origin``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def host_name(host: str) -> str:
    """The name of a ``Host`` header value, without its port or IPv6 brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def host_allowed(host: str, allowed: Iterable[str] = ()) -> bool:
    """Whether a ``Host`` header names this machine in a way a rebinding attacker cannot (see the module doc)."""
    name = host_name(host)
    if name == "localhost" or name.endswith(".localhost") or name in {a.lower() for a in allowed}:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def origin_allowed(request: web.Request) -> bool:
    """Whether a write comes from the server's own origin, or from a client that is not a browser."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin.rstrip("/").lower() == f"{request.scheme}://{request.host}".lower()


def local_guard(allowed_hosts: Iterable[str] = ()) -> Middleware:
    """An aiohttp middleware answering 403 to foreign Host names and to cross-origin writes."""
    allowed = tuple(allowed_hosts)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if host is not None and not host_allowed(host, allowed):
            return web.Response(
                status=403,
                text=f"Host {host_name(host)!r} is not allowed here (a loopback name, an IP, or configured)\n",
            )
        if request.method in _WRITES and not origin_allowed(request):
            return web.Response(status=403, text="cross-origin writes are refused\n")
        return await handler(request)

    return guard
