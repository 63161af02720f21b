"""The ``SIDECAR_OAUTH_REQUIRED`` check as a validator: a key without OAuth credentials is refused at the edge.

It is handed the authenticator's ``requires_credentials`` (a plain callable), so ``validate/`` imports nothing from
``send/``; ``app.py`` adds it last, only when OAuth is required.
"""

from __future__ import annotations

from collections.abc import Callable

from sidecar.errors import CredentialsMissing
from sidecar.model import Call, Warning, write_key_hash


class CredentialsRequired:
    """Refuses calls whose write key has no OAuth credentials (``FAILED_PRECONDITION``), naming the key's hash."""

    __slots__ = ("_requires",)

    def __init__(self, requires_credentials: Callable[[str], bool]) -> None:
        self._requires = requires_credentials

    def __call__(self, call: Call, warnings: list[Warning]) -> None:
        """Raise CredentialsMissing for a key the authenticator has no credentials for."""
        if self._requires(call.write_key):
            raise CredentialsMissing(
                f"write key {write_key_hash(call.write_key)} has no OAuth credentials and SIDECAR_OAUTH_REQUIRED is "
                "set: add the key to SIDECAR_OAUTH_CREDENTIALS_FILE"
            )
