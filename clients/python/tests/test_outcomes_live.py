"""WatchOutcomes against a real sidecar: a watch that survives a SIGKILL and restart, and a resume by cursor.

The harness (``up --outcomes``) runs the sidecar on a disk spool and restarts it on request. A sidecar without the
outcome API (``WatchOutcomes`` answering UNIMPLEMENTED) skips these tests, saying so.
"""

from __future__ import annotations

import asyncio
import collections
import urllib.request
import uuid
from collections.abc import Iterator

import grpc
import pytest
from test_conformance import Harness, running_harness

from segment_sidecar_client import AsyncClient, Client, Outcome, SidecarError

WRITE_KEY = "live-outcomes-key"
LIVE_TIMEOUT = 90.0
"""Seconds the whole scenario may take (a restart imports the sidecar again)."""


@pytest.fixture(scope="module")
def outcomes_harness() -> Iterator[Harness]:
    """A harness whose sidecar keeps a disk spool and can be restarted."""
    with running_harness("--outcomes") as started:
        yield started


def restart(harness: Harness) -> None:
    """SIGKILL the sidecar and start it again; returns once it answers."""
    request = urllib.request.Request(harness.restart_url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=LIVE_TIMEOUT) as response:
        assert response.status == 200


async def send(client: AsyncClient, count: int, prefix: str) -> list[str]:
    """Track ``count`` events under new message ids; return the ids."""
    ids = [f"{prefix}-{uuid.uuid4()}" for _ in range(count)]
    for message_id in ids:
        await client.track(user_id="u-live", event="Outcome Watched", message_id=message_id)
    return ids


async def test_watch_resumes_across_a_sidecar_restart(outcomes_harness: Harness) -> None:
    """Every event's DELIVERED record arrives once, across a SIGKILL and restart, then again from a cursor."""

    async def scenario() -> None:
        async with AsyncClient(outcomes_harness.address, write_key=WRITE_KEY) as client:
            try:
                await client.get_message_outcome("probe")
            except SidecarError as exc:
                if exc.code == grpc.StatusCode.UNIMPLEMENTED:
                    pytest.skip("the sidecar does not implement the outcome API (GetMessageOutcome, WatchOutcomes)")
                raise
            before = await send(client, 10, "before")
            got: list[Outcome] = []
            watch = client.watch_outcomes(write_keys=[WRITE_KEY], kinds=["delivered"])
            async for outcome in watch:
                got.append(outcome)
                if len(got) == 4:
                    break
            await watch.aclose()
            # The stream is closed by us: resume from the last cursor on a new one, then kill the sidecar under it.
            resumed = client.watch_outcomes(after_cursor=got[-1].cursor, write_keys=[WRITE_KEY], kinds=["delivered"])
            async for outcome in resumed:
                got.append(outcome)
                if len(got) == 6:
                    break
            await asyncio.to_thread(restart, outcomes_harness)
            after = await send(client, 10, "after")
            sentinel = (await send(client, 1, "sentinel"))[0]
            async for outcome in resumed:
                got.append(outcome)
                if outcome.message_id == sentinel:
                    break
            await resumed.aclose()
            counts = collections.Counter(o.message_id for o in got)
            assert set(counts) == {*before, *after, sentinel}
            assert [m for m, n in counts.items() if n > 1] == [], "a record came twice"
            assert {o.kind.value for o in got} == {"DELIVERED"}
            # Read again from the fourth record's cursor with the blocking client: the same records, in order.
            expected = [o.message_id for o in got[4:]]

            def again() -> list[str]:
                with Client(outcomes_harness.address) as blocking:
                    ids = []
                    for outcome in blocking.watch_outcomes(
                        after_cursor=got[3].cursor, write_keys=[WRITE_KEY], kinds=["delivered"]
                    ):
                        ids.append(outcome.message_id)
                        if outcome.message_id == sentinel:
                            return ids
                raise AssertionError("the watch ended")

            assert await asyncio.to_thread(again) == expected
            state = await client.get_message_outcome(sentinel)
            assert state.state.value == "DELIVERED"
            status = await client.get_write_key_status()
            assert status.state.value == "OK"

    await asyncio.wait_for(scenario(), LIVE_TIMEOUT)
