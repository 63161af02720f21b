"""The HTTP intake's answers and its memory of recent message ids, without a socket."""

from __future__ import annotations

import pytest

from sidecar.errors import (
    CapacityExhausted,
    CredentialsMissing,
    CursorExpired,
    FieldViolation,
    FlushTimeout,
    InvalidEvent,
    ServerBusy,
    ShuttingDown,
    SidecarError,
    SpoolFailure,
)
from sidecar.http_intake.answers import MAX_LISTED_REFUSALS, Refusal, for_error, refused
from sidecar.http_intake.recent import RecentIds
from sidecar.model import Region


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (CapacityExhausted("full", 0.2), 429, "spool_full", "1"),
        (CapacityExhausted("full", 2.5), 429, "spool_full", "3"),
        (ServerBusy("busy", 0.1), 429, "busy", "1"),
        (ShuttingDown("bye"), 503, "shutting_down", "1"),
        (SpoolFailure("disk"), 503, "spool_failure", "1"),
        (SidecarError("?"), 500, "internal", None),
    ],
)
def test_whole_request_errors_map_to_retryable_statuses(
    error: SidecarError, status: int, code: str, retry_after: str | None
) -> None:
    """Capacity answers 429 with whole-second Retry-After (at least 1), shutdown and disk 503, the rest 500."""
    answer = for_error(error)
    assert (answer.status, answer.body["code"], answer.headers.get("Retry-After")) == (status, code, retry_after)
    assert set(answer.body) == {"code", "message"}


def test_every_error_class_has_an_http_answer() -> None:
    """A new SidecarError subclass that reaches the HTTP edge whole must be given an answer here on purpose."""
    whole = {CapacityExhausted, ServerBusy, ShuttingDown, SpoolFailure}
    per_event = {InvalidEvent, CredentialsMissing}  # refused per event, named in a 400
    unreachable = {FlushTimeout, CursorExpired}  # the HTTP API has no flush and no outcome stream
    classes = set(SidecarError.__subclasses__()) | {ServerBusy}
    assert classes <= whole | per_event | unreachable, classes - whole - per_event - unreachable


def test_a_partial_refusal_names_each_refused_event() -> None:
    """The 400 lists index, messageId, field (JSON name) and reason of each refused event, and the accepted count."""
    refusal = Refusal(3, "m-3", (FieldViolation("user_id", "is required"),), "user_id is required")
    answer = refused([refusal], total=10)
    assert answer.status == 400 and answer.body["code"] == "events_refused"
    assert answer.body["accepted"] == 9
    assert answer.body["refused"] == [
        {
            "index": 3,
            "messageId": "m-3",
            "field": "userId",
            "reason": "is required",
            "violations": [{"field": "userId", "reason": "is required"}],
        }
    ]
    assert "index 3" in answer.body["message"] and "userId" in answer.body["message"]


def test_a_huge_refusal_lists_a_bounded_number() -> None:
    """A request refusing thousands of events names the first ones and counts the rest (a bounded answer)."""
    refusals = [Refusal(i, None, (), "bad") for i in range(5000)]
    body = refused(refusals, total=5000).body
    assert len(body["refused"]) == MAX_LISTED_REFUSALS
    assert body["refused_not_listed"] == 5000 - MAX_LISTED_REFUSALS


def test_recent_ids_are_bounded_by_count_and_age() -> None:
    """Ids are recognised per (key, region); the oldest are forgotten past the count, all past the age."""
    now = [0.0]
    recent = RecentIds(lambda: now[0], limit=3, seconds=10.0)
    recent.remember("wk", Region.US, ["a", "b", "c", "d"])
    assert len(recent) == 3
    assert not recent.seen("wk", Region.US, "a")
    assert recent.seen("wk", Region.US, "d")
    assert not recent.seen("other", Region.US, "d")
    assert not recent.seen("wk", Region.EU, "d")
    now[0] = 11.0
    assert not recent.seen("wk", Region.US, "d")
    recent.remember("wk", Region.US, ["e"])
    assert len(recent) == 1
