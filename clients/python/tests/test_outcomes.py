"""The outcome API: the three calls, and a watch that resumes by itself, against a scripted gRPC server."""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest
from conftest import Failure, Running, delivered
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from segment_sidecar_client import (
    AsyncClient,
    Client,
    CursorExpiredError,
    MessageState,
    OutcomeKind,
    Region,
    RetryPolicy,
    WriteKeyState,
)

FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)
"""Short reconnect waits, so that a test of three drops takes milliseconds."""


def watch_cursors(scripted: Running) -> list[str]:
    """The ``after_cursor`` of every watch connection the server saw, in order."""
    return [request.after_cursor for method, request, _ in scripted.sidecar.seen if method == "WatchOutcomes"]


async def test_watch_resumes_after_the_last_cursor_when_the_stream_drops(scripted: Running) -> None:
    """Three dropped streams (one before any record): the watch reconnects from its last cursor, nothing twice."""
    scripted.sidecar.outcome_log = delivered(10)
    scripted.sidecar.watch_drops = [3, 0, 4]
    got = []
    async with AsyncClient(scripted.address, retry=FAST) as client:
        async for outcome in client.watch_outcomes(kinds=["delivered"]):
            got.append(outcome)
            if len(got) == 10:
                break
    assert [o.message_id for o in got] == [f"m{i}" for i in range(1, 11)]
    assert watch_cursors(scripted) == ["", "c3", "c3", "c7"]
    first = scripted.sidecar.seen[0][1]
    assert list(first.kinds) == [1]  # OUTCOME_KIND_DELIVERED
    assert got[0].kind is OutcomeKind.DELIVERED
    assert got[0].region is Region.US
    assert got[0].segment_status == 200


async def test_blocking_watch_resumes_from_a_given_cursor(scripted: Running) -> None:
    """The blocking iterator starts after ``after_cursor`` and resumes after a drop the same way."""
    scripted.sidecar.outcome_log = delivered(6)
    scripted.sidecar.watch_drops = [2]

    def run() -> list[str]:
        with Client(scripted.address, retry=FAST) as client:
            ids = []
            for outcome in client.watch_outcomes(after_cursor="c1"):
                ids.append(outcome.message_id)
                if len(ids) == 5:
                    break
            return ids

    assert await asyncio.to_thread(run) == ["m2", "m3", "m4", "m5", "m6"]
    assert watch_cursors(scripted) == ["c1", "c3"]


async def test_watch_keeps_reconnecting_past_the_attempt_limit(scripted: Running) -> None:
    """Eight drops in a row without a record are more than a call's 5 attempts: the watch still does not give up."""
    scripted.sidecar.outcome_log = delivered(1)
    scripted.sidecar.watch_drops = [0] * 8
    async with AsyncClient(scripted.address, retry=FAST) as client:
        async for outcome in client.watch_outcomes():
            assert outcome.message_id == "m1"
            break
    assert watch_cursors(scripted) == [""] * 9


async def test_a_from_now_watch_dropped_before_any_record_resumes_from_its_start_cursor(scripted: Running) -> None:
    """A from_now watch dropped before any record resumes after its start cursor: what was written meanwhile comes.

    The reconnect asks after the cursor the sidecar named in the first stream's headers, not from_now again, and the
    two records written in between come, each once.
    """
    log = delivered(5)
    scripted.sidecar.outcome_log = log[:3]
    scripted.sidecar.written_on_drop = log[3:]
    scripted.sidecar.start_cursor_header = True
    scripted.sidecar.watch_drops = [0]

    async def watch() -> list[str]:
        got = []
        async with AsyncClient(scripted.address, retry=FAST) as client:
            async for outcome in client.watch_outcomes(from_now=True):
                got.append(outcome.message_id)
                if len(got) == 2:
                    return got
        raise AssertionError("the watch ended")

    assert await asyncio.wait_for(watch(), 10) == ["m4", "m5"]
    requests = [request for method, request, _ in scripted.sidecar.seen if method == "WatchOutcomes"]
    assert [(r.after_cursor, r.from_now) for r in requests] == [("", True), ("c3", False)]


async def test_a_blocking_watch_of_an_empty_log_resumes_from_its_start_cursor(scripted: Running) -> None:
    """The blocking client resumes a from_now watch of an empty log from its start cursor too.

    Dropped twice before any record, it reconnects after the sidecar's start cursor (``c0``), and gets the record
    written meanwhile.
    """
    scripted.sidecar.written_on_drop = delivered(1)
    scripted.sidecar.start_cursor_header = True
    scripted.sidecar.watch_drops = [0, 0]

    def run() -> str:
        with Client(scripted.address, retry=FAST) as client:
            deadline = threading.Timer(10, client.close)  # a watch that missed the record ends rather than waits
            deadline.start()
            try:
                for outcome in client.watch_outcomes(from_now=True):
                    return outcome.message_id
            finally:
                deadline.cancel()
        raise AssertionError("the watch ended without the record written while it was away")

    assert await asyncio.to_thread(run) == "m1"
    assert watch_cursors(scripted) == ["", "c0", "c0"]


def _expired(message: str, oldest: str | None) -> Failure:
    failure = Failure(grpc.StatusCode.OUT_OF_RANGE, message)
    if oldest is not None:
        status = status_pb2.Status(code=grpc.StatusCode.OUT_OF_RANGE.value[0], message=message)
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.ErrorInfo(reason="CURSOR_EXPIRED", metadata={"oldest_cursor": oldest}))
        status.details.append(packed)
        failure.trailers = lambda: (("grpc-status-details-bin", status.SerializeToString()),)  # type: ignore[method-assign]
    return failure


@pytest.mark.parametrize(
    ("message", "oldest", "expected"),
    [
        ("cursor is older than the window", "c42", "c42"),
        # The sidecar's words when its log is empty (an empty oldest_cursor): no cursor, not a word of the text.
        ("the oldest record held has cursor (none: the log is empty); start again from an empty cursor", "", None),
        ("cursor is older than the window", None, None),
    ],
)
async def test_a_cursor_older_than_the_window_raises_with_the_oldest_cursor(
    scripted: Running, message: str, oldest: str | None, expected: str | None
) -> None:
    """OUT_OF_RANGE is not retried: it raises CursorExpiredError with the oldest cursor.

    The cursor is the one its ErrorInfo detail holds, or None when there is none.
    """
    scripted.sidecar.watch_failure = _expired(message, oldest)
    async with AsyncClient(scripted.address, retry=FAST) as client:
        with pytest.raises(CursorExpiredError) as raised:
            async for _ in client.watch_outcomes(after_cursor="c1"):
                pass
    assert raised.value.oldest_cursor == expected
    assert raised.value.code == grpc.StatusCode.OUT_OF_RANGE
    assert len(watch_cursors(scripted)) == 1


async def test_status_pages_and_message_outcome(scripted: Running) -> None:
    """get_write_key_status, iter_write_keys over every page, and get_message_outcome decode the answers."""
    scripted.sidecar.key_pages = [["a", "b"], ["c"]]
    scripted.sidecar.outcome_log = delivered(2)
    async with AsyncClient(scripted.address, write_key="wk-1", region="eu") as client:
        status = await client.get_write_key_status()
        assert (status.fingerprint, status.region, status.state) == ("1-kw", Region.EU, WriteKeyState.REFUSED)
        assert status.state_since is not None
        assert status.state_since.timestamp() == 1_800_000_000
        assert status.dead_letters_by_reason == {"parked_too_long": 2}
        assert status.last_delivered_at is None
        assert [s.fingerprint async for s in client.iter_write_keys(state="refused", page_size=2)] == ["a", "b", "c"]
        found = await client.get_message_outcome("m2")
        assert found.state is MessageState.DELIVERED
        assert found.outcome is not None
        assert found.outcome.cursor == "c2"
        missing = await client.get_message_outcome("nope")
        assert (missing.state, missing.outcome) == (MessageState.UNKNOWN, None)
    listed = [r for m, r, _ in scripted.sidecar.seen if m == "ListWriteKeys"]
    assert [(r.page_token, r.page_size, r.state) for r in listed] == [("", 2, 3), ("1", 2, 3)]


async def test_the_blocking_client_pages_too(scripted: Running) -> None:
    """The blocking client's iter_write_keys follows the page tokens as well."""
    scripted.sidecar.key_pages = [["a"], ["b"], []]

    def run() -> list[str]:
        with Client(scripted.address) as client:
            return [s.fingerprint for s in client.iter_write_keys()]

    assert await asyncio.to_thread(run) == ["a", "b"]
