"""Segment's /v1/batch checks as pure functions, without sockets."""

from __future__ import annotations

import base64

import pytest

from sidecar.collector.checks import BatchError, check_event, parse_authorization, parse_batch


def basic(key: str) -> str:
    """A Basic Authorization header for a write key."""
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def test_parse_authorization() -> None:
    """The Basic user name is the write key; other schemes keep their credential."""
    assert parse_authorization(basic("abc123")) == ("basic", "abc123")
    assert parse_authorization("Basic YWJjMTIzOg==") == ("basic", "abc123")
    assert parse_authorization("bearer  tok ") == ("bearer", "tok")
    assert parse_authorization(None) == (None, None)
    assert parse_authorization("Basic %%%") == ("basic", None)


def test_parse_batch_and_check_event_without_sockets() -> None:
    """The checks are pure functions: a good body parses, a bad event raises a 400 BatchError."""
    envelope, events = parse_batch(b'{"batch": [{"type": "identify", "userId": "u"}], "writeKey": "k"}')
    assert envelope["writeKey"] == "k"
    check_event(0, events[0])
    with pytest.raises(BatchError) as caught:
        check_event(3, {"type": "screen"})
    assert (caught.value.status, caught.value.code) == (400, "no_user_anon_id")
    assert "batch[3]" in caught.value.message
