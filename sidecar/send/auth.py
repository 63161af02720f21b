"""How a batch request authenticates: Basic auth with the write key, or (per key, optional) an OAuth Bearer token.

The deliverer asks an :class:`Authenticator` for the credentials of each attempt. Basic is the default for every
key; the OAuth authenticator (``sidecar.send.oauth``) wraps it and takes over the keys it has credentials for.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Protocol

from sidecar.model import Region


@dataclass(frozen=True, slots=True)
class Authorization:
    """What one request carries: its headers, and whether the body must also hold ``writeKey``."""

    headers: dict[str, str]
    write_key_in_body: bool = False
    token_id: str | None = field(default=None, repr=False)
    """Opaque identity of the Bearer token used, handed back to :meth:`Authenticator.rejected` on a 401."""


class Authenticator(Protocol):
    """Supplies the credentials of a request to Segment for one (write key, region)."""

    async def start(self) -> None:
        """Begin background work (token refresh, file watching); return quickly."""

    async def stop(self) -> None:
        """Stop background work; idempotent, and safe without :meth:`start`."""

    def requires_credentials(self, write_key: str) -> bool:
        """True when a call for this key must be refused (OAuth required and no credentials for it)."""

    async def authorize(self, write_key: str, region: Region) -> Authorization:
        """The credentials for the next attempt; may wait for a token."""

    def rejected(self, write_key: str, region: Region, authorization: Authorization) -> bool:
        """Segment answered 401 to a request that used ``authorization``.

        Return True when a renewed credential is worth one more attempt (a Bearer token that can be renewed), False
        when the key itself is refused (Basic: the write key is not valid).
        """


def basic_header(write_key: str) -> str:
    """``Basic base64("<write key>:")``: the key is the user name and the password is empty."""
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode("ascii")


class BasicAuthenticator:
    """Basic auth with the write key, for every key."""

    __slots__ = ()

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""

    def requires_credentials(self, write_key: str) -> bool:
        """Basic auth needs nothing beyond the key itself."""
        return False

    async def authorize(self, write_key: str, region: Region) -> Authorization:
        """The Basic header for this key."""
        return Authorization({"Authorization": basic_header(write_key)})

    def rejected(self, write_key: str, region: Region, authorization: Authorization) -> bool:
        """A 401 on Basic means the key is not valid: nothing to renew."""
        return False
