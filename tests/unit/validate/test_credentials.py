"""SIDECAR_OAUTH_REQUIRED as a validator: keys without credentials are refused by hash, others pass untouched."""

from __future__ import annotations

import pytest

from sidecar.errors import CredentialsMissing
from sidecar.model import Call, CallType, Region, Warning, write_key_hash
from sidecar.validate.credentials import CredentialsRequired


def call(write_key: str) -> Call:
    """A minimal track call for ``write_key``."""
    return Call(CallType.TRACK, write_key, Region.US, {"event": "E", "userId": "u"}, {}, 0.0)


def test_keys_without_credentials_are_refused_naming_only_the_hash() -> None:
    """A key the authenticator has no credentials for raises CredentialsMissing naming its hash and the file."""
    check = CredentialsRequired(lambda key: key != "wk-with-credentials")
    warnings: list[Warning] = []
    check(call("wk-with-credentials"), warnings)
    assert warnings == []
    with pytest.raises(CredentialsMissing) as caught:
        check(call("wk-secret-without"), warnings)
    assert write_key_hash("wk-secret-without") in str(caught.value)
    assert "SIDECAR_OAUTH_CREDENTIALS_FILE" in str(caught.value)
    assert "wk-secret-without" not in str(caught.value)
