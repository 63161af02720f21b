"""Outcome classification is a pure function of Segment's answer."""

from __future__ import annotations

import email.utils
import random

import pytest

from sidecar.backoff import Backoff
from sidecar.send.classify import (
    MAX_SERVER_DELAY,
    Delivered,
    Permanent,
    Retry,
    Split,
    Unauthorized,
    classify,
    classify_error,
    server_delay,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, Delivered),
        (202, Delivered),
        (400, Split),
        (413, Split),
        (401, Unauthorized),
        (403, Unauthorized),
        (408, Retry),
        (429, Retry),
        (500, Retry),
        (502, Retry),
        (503, Retry),
        (504, Retry),
        (501, Permanent),
        (505, Permanent),
        (404, Permanent),
        (422, Permanent),
    ],
)
def test_status_codes_map_to_outcomes(status: int, kind: type) -> None:
    """Each status lands in its documented outcome."""
    assert isinstance(classify(status, {}, "", 0.0), kind)


def test_retry_after_seconds_and_http_date() -> None:
    """Retry-After is read as seconds or as an HTTP date; the larger of it and X-RateLimit-Reset wins."""
    now = 1_800_000_000.0
    assert server_delay({"Retry-After": "7"}, now) == 7
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert server_delay({"Retry-After": date}, now) == pytest.approx(30, abs=1)
    assert server_delay({"Retry-After": "2", "X-RateLimit-Reset": "5"}, now) == 5
    assert server_delay({"Retry-After": "100000"}, now) == MAX_SERVER_DELAY
    assert server_delay({"Retry-After": "soon"}, now) is None
    outcome = classify(429, {"Retry-After": "3"}, "", now)
    assert isinstance(outcome, Retry) and outcome.after == 3


def test_network_errors_are_retried() -> None:
    """A reset or refused connection is a retry."""
    assert isinstance(classify_error(ConnectionResetError("reset by peer")), Retry)


def test_backoff_is_capped_full_jitter_with_server_floor() -> None:
    """Delays stay within [0, min(cap, base*2^n)], and never under the server's own delay."""
    backoff = Backoff(base=0.5, cap=4.0)
    rng = random.Random(1)
    for attempt in range(10):
        delay = backoff.delay(attempt, rng=rng)
        assert 0 <= delay <= min(4.0, 0.5 * 2**attempt)
    assert backoff.delay(0, server_delay=9.0, rng=rng) == 9.0


@pytest.mark.parametrize("value", ["\u00b2", "\uff11\uff12", "inf", "nan", "-3", "1e3", "", "  "])
def test_a_retry_after_that_is_not_plain_seconds_never_raises(value: str) -> None:
    """Values `str.isdigit()` accepts but `float()` refuses (such as "²"), and non-finite ones, are ignored."""
    assert server_delay({"Retry-After": value}, 1_800_000_000.0) is None
    assert isinstance(classify(503, {"Retry-After": value}, "", 1_800_000_000.0), Retry)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failed_attempt_to_retry(status: int) -> None:
    """A 3xx is not followed: the attempt failed and is retried later."""
    outcome = classify(status, {"Location": "http://elsewhere.example/v1/batch"}, "", 0.0)
    assert isinstance(outcome, Retry) and outcome.status == status
