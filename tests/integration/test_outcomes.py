"""The outcome log end to end, in process: a sidecar delivering to the local collector with a healthy key, a key
Segment refuses some events of, and a revoked key; WatchOutcomes, GetWriteKeyStatus, ListWriteKeys and
GetMessageOutcome against it, through a real gRPC channel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import orjson
import pytest
from google.rpc import error_details_pb2

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.metrics import OutcomeCollector
from sidecar.model import write_key_hash
from sidecar.outcomes.records import OutcomeKind, OutcomeRecord
from tests.conftest import SidecarFactory
from tests.support.harness import Collectors, _details, field_violations, start_sidecar

HEALTHY, PICKY, REVOKED = "wk-healthy", "wk-picky", "wk-revoked"
FAST = {"SIDECAR_PARKED_RETRY_INTERVAL": "200ms", "SIDECAR_PARKED_DEAD_LETTER_AFTER": "1s"}


def _track(key: str, message_id: str) -> pb.BatchEvent:
    return pb.BatchEvent(
        track=pb.TrackRequest(write_key=key, user_id="u", event="Report Generated", message_id=message_id)
    )


async def _send(stub: object, events: list[pb.BatchEvent]) -> None:
    reply = await stub.Batch(pb.BatchRequest(events=events))  # type: ignore[attr-defined]
    assert reply.accepted == len(events)


async def _collect(
    stream: AsyncIterator[pb.WatchOutcomesResponse], done: object, timeout: float = 20.0
) -> list[pb.Outcome]:
    got: list[pb.Outcome] = []
    async with asyncio.timeout(timeout):
        async for reply in stream:
            got.append(reply.outcome)
            if done(got):  # type: ignore[operator]
                return got
    return got


def _finals(records: list[pb.Outcome]) -> list[pb.Outcome]:
    return [r for r in records if r.message_id]


async def test_every_accepted_event_gets_one_final_record_with_its_kind_and_reason(
    sidecar_factory: SidecarFactory, collectors: Collectors
) -> None:
    """Healthy events are DELIVERED, refused ones DEAD_LETTERED (refused_event, 400), a revoked key's
    DEAD_LETTERED (parked_too_long) after a KEY_REFUSED record; one final record per event, each with a cursor."""
    collectors.us.faults.revoked_write_keys.add(REVOKED)
    collectors.us.faults.reject_message_ids.update({"p-3", "p-7"})
    running = await sidecar_factory(**FAST)
    stream = running.stub.WatchOutcomes(pb.WatchOutcomesRequest())
    events = [_track(HEALTHY, f"h-{i}") for i in range(20)]
    events += [_track(PICKY, f"p-{i}") for i in range(10)]
    events += [_track(REVOKED, f"r-{i}") for i in range(5)]
    await _send(running.stub, events)
    got = await _collect(stream, lambda got: len(_finals(got)) >= 35)
    stream.cancel()
    finals = _finals(got)
    assert sorted(r.message_id for r in finals) == sorted(e.track.message_id for e in events)
    by_id = {r.message_id: r for r in finals}
    assert all(by_id[f"h-{i}"].kind == pb.OUTCOME_KIND_DELIVERED for i in range(20))
    for i in range(10):
        record = by_id[f"p-{i}"]
        if i in (3, 7):
            assert (record.kind, record.dead_letter_reason, record.segment_status) == (
                pb.OUTCOME_KIND_DEAD_LETTERED,
                "refused_event",
                400,
            )
        else:
            assert record.kind == pb.OUTCOME_KIND_DELIVERED
    assert all(by_id[f"r-{i}"].dead_letter_reason == "parked_too_long" for i in range(5))
    refused = [r for r in got if r.kind == pb.OUTCOME_KIND_KEY_REFUSED]
    assert [r.write_key_fingerprint for r in refused] == [write_key_hash(REVOKED)]
    assert refused[0].segment_status == 401
    assert len({r.cursor for r in got}) == len(got)
    assert by_id["h-0"].write_key_fingerprint == write_key_hash(HEALTHY)
    assert by_id["h-0"].region == pb.REGION_US


async def test_a_watcher_resumes_after_its_last_cursor_with_nothing_missed_or_twice(
    sidecar_factory: SidecarFactory,
) -> None:
    """A watcher that stops after some records and comes back with its last cursor gets exactly the rest."""
    running = await sidecar_factory()
    await _send(running.stub, [_track(HEALTHY, f"a-{i}") for i in range(30)])
    first = running.stub.WatchOutcomes(pb.WatchOutcomesRequest())
    head = await _collect(first, lambda got: len(got) >= 12)
    first.cancel()
    await _send(running.stub, [_track(HEALTHY, f"b-{i}") for i in range(10)])
    second = running.stub.WatchOutcomes(pb.WatchOutcomesRequest(after_cursor=head[-1].cursor))
    tail = await _collect(second, lambda got: len(head) + len(got) >= 40)
    second.cancel()
    ids = [r.message_id for r in head + tail]
    assert sorted(ids) == sorted([f"a-{i}" for i in range(30)] + [f"b-{i}" for i in range(10)])


async def test_key_status_says_refused_since_the_first_refusal_then_ok_and_key_recovered(
    sidecar_factory: SidecarFactory, collectors: Collectors
) -> None:
    """GetWriteKeyStatus: UNKNOWN before any request, REFUSED with Segment's 401 and answer while revoked, then OK
    once the collector accepts the key again, with KEY_RECOVERED on the stream; ListWriteKeys filters by state."""
    running = await sidecar_factory(SIDECAR_PARKED_RETRY_INTERVAL="200ms")
    status = (await running.stub.GetWriteKeyStatus(pb.GetWriteKeyStatusRequest(write_key=REVOKED))).status
    assert status.state == pb.WRITE_KEY_STATE_UNKNOWN
    collectors.us.faults.revoked_write_keys.add(REVOKED)
    stream = running.stub.WatchOutcomes(pb.WatchOutcomesRequest(write_keys=[REVOKED]))
    await _send(running.stub, [_track(REVOKED, "r-1"), _track(HEALTHY, "h-1")])
    await _collect(stream, lambda got: any(r.kind == pb.OUTCOME_KIND_KEY_REFUSED for r in got))
    status = (await running.stub.GetWriteKeyStatus(pb.GetWriteKeyStatusRequest(write_key=REVOKED))).status
    assert (status.state, status.last_status, status.backlog_events) == (pb.WRITE_KEY_STATE_REFUSED, 401, 1)
    assert "revoked" in status.last_response
    assert status.fingerprint == write_key_hash(REVOKED)
    refused = await running.stub.ListWriteKeys(pb.ListWriteKeysRequest(state=pb.WRITE_KEY_STATE_REFUSED))
    assert [s.fingerprint for s in refused.write_keys] == [write_key_hash(REVOKED)]
    collectors.us.faults.revoked_write_keys.clear()
    got = await _collect(stream, lambda got: any(r.kind == pb.OUTCOME_KIND_KEY_RECOVERED for r in got))
    stream.cancel()
    assert {r.write_key_fingerprint for r in got} == {write_key_hash(REVOKED)}
    status = (await running.stub.GetWriteKeyStatus(pb.GetWriteKeyStatusRequest(write_key=REVOKED))).status
    assert status.state == pb.WRITE_KEY_STATE_OK
    assert status.HasField("last_delivered_at")


async def test_get_message_outcome_answers_delivered_dead_lettered_waiting_and_unknown(
    sidecar_factory: SidecarFactory, collectors: Collectors
) -> None:
    """GetMessageOutcome: DELIVERED with its record, DEAD_LETTERED with the reason, WAITING for a revoked key's
    event, UNKNOWN for an id never seen."""
    collectors.us.faults.revoked_write_keys.add(REVOKED)
    collectors.us.faults.reject_message_ids.add("bad-1")
    running = await sidecar_factory()
    await _send(running.stub, [_track(HEALTHY, "ok-1"), _track(HEALTHY, "bad-1"), _track(REVOKED, "held-1")])
    stream = running.stub.WatchOutcomes(pb.WatchOutcomesRequest())
    await _collect(stream, lambda got: len(_finals(got)) >= 2)
    stream.cancel()
    stub = running.stub
    ok = await stub.GetMessageOutcome(pb.GetMessageOutcomeRequest(message_id="ok-1"))
    assert (ok.state, ok.outcome.kind) == (pb.MESSAGE_STATE_DELIVERED, pb.OUTCOME_KIND_DELIVERED)
    bad = await stub.GetMessageOutcome(pb.GetMessageOutcomeRequest(message_id="bad-1"))
    assert (bad.state, bad.outcome.dead_letter_reason) == (pb.MESSAGE_STATE_DEAD_LETTERED, "refused_event")
    held = await stub.GetMessageOutcome(pb.GetMessageOutcomeRequest(message_id="held-1"))
    assert held.state in (pb.MESSAGE_STATE_WAITING, pb.MESSAGE_STATE_IN_FLIGHT)
    assert held.write_key_fingerprint == write_key_hash(REVOKED)
    unknown = await stub.GetMessageOutcome(pb.GetMessageOutcomeRequest(message_id="never"))
    assert unknown.state == pb.MESSAGE_STATE_UNKNOWN


async def test_a_bad_cursor_is_invalid_argument_and_a_pruned_one_out_of_range(
    sidecar_factory: SidecarFactory,
) -> None:
    """A string that is no cursor: INVALID_ARGUMENT on after_cursor. A cursor whose next records were pruned:
    OUT_OF_RANGE naming the oldest cursor held (in the message and an ErrorInfo)."""
    running = await sidecar_factory(SIDECAR_OUTCOMES_MAX_BYTES="1KiB")
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await anext(aiter(running.stub.WatchOutcomes(pb.WatchOutcomesRequest(after_cursor="nonsense"))))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(bad.value)] == ["after_cursor"]
    await _send(running.stub, [_track(HEALTHY, f"x-{i}") for i in range(40)])
    stream = running.stub.WatchOutcomes(pb.WatchOutcomesRequest())
    first = await _collect(stream, lambda got: len(got) >= 1)
    stream.cancel()
    await _send(running.stub, [_track(HEALTHY, f"y-{i}") for i in range(40)])
    flushed = await running.stub.Flush(pb.FlushRequest(), timeout=10)
    assert flushed.delivered >= 80
    await running.app.spool.prune()
    with pytest.raises(grpc.aio.AioRpcError) as old:
        await anext(aiter(running.stub.WatchOutcomes(pb.WatchOutcomesRequest(after_cursor=first[0].cursor))))
    assert old.value.code() == grpc.StatusCode.OUT_OF_RANGE
    infos = _details(old.value, error_details_pb2.ErrorInfo)
    assert infos and infos[0].metadata["oldest_cursor"]
    assert infos[0].metadata["oldest_cursor"] in (old.value.details() or "")


async def test_parked_too_long_counts_from_the_stored_first_refusal_across_a_restart(
    collectors: Collectors, tmp_path: Path
) -> None:
    """A key refused at T, the sidecar restarted at T + 3 s with SIDECAR_PARKED_DEAD_LETTER_AFTER=3s: its event is
    dead-lettered at the restarted sidecar's first probe (the park counts from the stored T, not from the restart),
    and GetWriteKeyStatus still says REFUSED since T."""
    collectors.us.faults.revoked_write_keys.add(REVOKED)
    spool = tmp_path / "spool"
    first = await start_sidecar(
        collectors, spool, {"SIDECAR_PARKED_RETRY_INTERVAL": "100ms", "SIDECAR_PARKED_DEAD_LETTER_AFTER": "1h"}
    )
    try:
        await _send(first.stub, [_track(REVOKED, "r-1")])
        stream = first.stub.WatchOutcomes(pb.WatchOutcomesRequest())
        await _collect(stream, lambda got: any(r.kind == pb.OUTCOME_KIND_KEY_REFUSED for r in got))
        stream.cancel()
        since = (await first.stub.GetWriteKeyStatus(pb.GetWriteKeyStatusRequest(write_key=REVOKED))).status.state_since
    finally:
        await first.close()
    refused_at = since.ToNanoseconds() / 1e9
    await asyncio.sleep(max(0.0, refused_at + 3.0 - time.time()))  # a wall-clock deadline, not a guess
    second = await start_sidecar(
        collectors, spool, {"SIDECAR_PARKED_RETRY_INTERVAL": "100ms", "SIDECAR_PARKED_DEAD_LETTER_AFTER": "3s"}
    )
    try:
        started = time.monotonic()
        stream = second.stub.WatchOutcomes(pb.WatchOutcomesRequest())
        got = await _collect(stream, lambda got: any(r.message_id == "r-1" for r in got))
        stream.cancel()
        elapsed = time.monotonic() - started
        assert [r.dead_letter_reason for r in got if r.message_id == "r-1"] == ["parked_too_long"]
        assert elapsed < 2.5, f"dead-lettered {elapsed:.1f} s after the restart: the park restarted with the process"
        status = (await second.stub.GetWriteKeyStatus(pb.GetWriteKeyStatusRequest(write_key=REVOKED))).status
        assert status.state_since == since
    finally:
        await second.close()


async def test_a_stalled_watcher_holds_up_nothing_and_the_metrics_show_it_behind(
    sidecar_factory: SidecarFactory,
) -> None:
    """A watcher that opens a stream and stops reading: 3,000 events are still delivered (Flush returns), the
    metrics count one watcher with a lag above zero and the records kept; when it reads again it gets all of them.

    The watcher's channel has gRPC's BDP probing off, so its stream window stays at 64 KB (about 800 records) and
    flow control holds the server's sends: with probing on, the client's transport takes all 3,000 records unread,
    the watcher catches up, and its lag is above zero only while Flush happens to outrun it."""
    running = await sidecar_factory()
    stalled = grpc.aio.insecure_channel(f"127.0.0.1:{running.app.port}", options=[("grpc.http2.bdp_probe", 0)])
    try:
        stream = pb_grpc.SidecarServiceStub(stalled).WatchOutcomes(pb.WatchOutcomesRequest(from_now=True))
        async with asyncio.timeout(10):
            while not running.app.outcomes.watchers:  # its headers come before its watcher reads the log
                await asyncio.sleep(0.01)
        for start in range(0, 3000, 500):
            await _send(running.stub, [_track(HEALTHY, f"s-{i}") for i in range(start, start + 500)])
        flushed = await running.stub.Flush(pb.FlushRequest(), timeout=30)
        assert flushed.delivered == 3000
        families = {f.name: f for f in OutcomeCollector(running.app.outcomes).collect()}
        assert families["sidecar_outcome_watchers"].samples[0].value == 1
        assert families["sidecar_outcome_records"].samples[0].value == 3000
        assert families["sidecar_outcome_watcher_lag_seconds"].samples[0].value > 0
        got = await _collect(stream, lambda got: len(got) >= 3000)
        stream.cancel()
    finally:
        await stalled.close()
    assert sorted(r.message_id for r in got) == sorted(f"s-{i}" for i in range(3000))


async def test_the_debugger_page_shows_each_keys_state(sidecar_factory: SidecarFactory, collectors: Collectors) -> None:
    """The debugger's /keys (the page's key table) lists a revoked key by fingerprint as REFUSED with Segment's 401,
    and never the key itself."""
    collectors.us.faults.revoked_write_keys.add(REVOKED)
    running = await sidecar_factory(SIDECAR_DEBUGGER_LISTEN="127.0.0.1:0")
    stream = running.stub.WatchOutcomes(pb.WatchOutcomesRequest())
    await _send(running.stub, [_track(REVOKED, "r-1"), _track(HEALTHY, "h-1")])
    await _collect(stream, lambda got: any(r.kind == pb.OUTCOME_KIND_KEY_REFUSED for r in got) and len(got) >= 2)
    stream.cancel()
    assert running.app.debugger is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{running.app.debugger.port}/keys") as reply,
    ):
        text = await reply.text()
    table = {row["fingerprint"]: row for row in orjson.loads(text)}
    assert table[write_key_hash(REVOKED)]["state"] == "REFUSED"
    assert table[write_key_hash(REVOKED)]["last_status"] == 401
    assert table[write_key_hash(HEALTHY)]["state"] == "OK"
    assert REVOKED not in text and HEALTHY not in text


async def _start_cursor(stream: grpc.aio.UnaryStreamCall[pb.WatchOutcomesRequest, pb.WatchOutcomesResponse]) -> str:
    """The ``outcome-start-cursor`` header of a watch stream, waiting for the headers (AssertionError if absent)."""
    async with asyncio.timeout(10):
        headers = await stream.initial_metadata()
    start = headers.get("outcome-start-cursor")
    assert isinstance(start, str), f"no outcome-start-cursor header in {list(headers)}"
    return start


async def test_every_watch_names_the_cursor_it_starts_after_in_its_headers(
    sidecar_factory: SidecarFactory,
) -> None:
    """The outcome-start-cursor header comes before any record (and without one): on an empty log it is the cursor
    of position 0; with from_now it is the newest record's cursor; with after_cursor it is that cursor; from the
    oldest held it is the position just before it."""
    running = await sidecar_factory()
    zero = running.app.outcomes.cursor_of(OutcomeRecord(OutcomeKind.DELIVERED, 0.0, "", "", seq=0))
    for request in (pb.WatchOutcomesRequest(from_now=True), pb.WatchOutcomesRequest()):
        empty = running.stub.WatchOutcomes(request)
        assert await _start_cursor(empty) == zero
        empty.cancel()
    await _send(running.stub, [_track(HEALTHY, f"a-{i}") for i in range(5)])
    oldest = running.stub.WatchOutcomes(pb.WatchOutcomesRequest())
    assert await _start_cursor(oldest) == zero
    held = await _collect(oldest, lambda got: len(got) >= 5)
    oldest.cancel()
    live = running.stub.WatchOutcomes(pb.WatchOutcomesRequest(from_now=True))
    assert await _start_cursor(live) == held[-1].cursor
    live.cancel()
    resumed = running.stub.WatchOutcomes(pb.WatchOutcomesRequest(after_cursor=held[2].cursor))
    assert await _start_cursor(resumed) == held[2].cursor
    assert [r.message_id for r in await _collect(resumed, lambda got: len(got) >= 2)] == ["a-3", "a-4"]
    resumed.cancel()


async def test_a_from_now_watch_lost_before_its_first_record_resumes_from_its_start_cursor(
    sidecar_factory: SidecarFactory,
) -> None:
    """A from_now watch (filtered to a key that has no record yet) dropped before any record: resuming after its
    header's cursor gives every record written since it started, and none from before."""
    running = await sidecar_factory()
    await _send(running.stub, [_track(HEALTHY, f"before-{i}") for i in range(5)])
    first = running.stub.WatchOutcomes(pb.WatchOutcomesRequest())
    await _collect(first, lambda got: len(got) >= 5)
    first.cancel()
    lost = running.stub.WatchOutcomes(pb.WatchOutcomesRequest(from_now=True, write_keys=[PICKY]))
    start = await _start_cursor(lost)
    lost.cancel()
    await _send(running.stub, [_track(PICKY, f"p-{i}") for i in range(3)] + [_track(HEALTHY, "h-after")])
    resumed = running.stub.WatchOutcomes(pb.WatchOutcomesRequest(after_cursor=start, write_keys=[PICKY]))
    got = await _collect(resumed, lambda got: len(got) >= 3)
    resumed.cancel()
    assert sorted(r.message_id for r in got) == ["p-0", "p-1", "p-2"]
    everything = running.stub.WatchOutcomes(pb.WatchOutcomesRequest(after_cursor=start))
    since = await _collect(everything, lambda got: len(got) >= 4)
    everything.cancel()
    assert sorted(r.message_id for r in since) == ["h-after", "p-0", "p-1", "p-2"]


async def test_watches_at_their_limit_leave_event_calls_their_places(sidecar_factory: SidecarFactory) -> None:
    """Open watches are counted apart from calls (SIDECAR_MAX_OUTCOME_WATCHES), and gRPC's own admission leaves room
    for both: with every watch place taken, one more watch is refused RESOURCE_EXHAUSTED, naming the variable, with
    a retry delay, while event calls are still served; a watch that ends gives its place back."""
    running = await sidecar_factory(SIDECAR_MAX_CONCURRENT_CALLS="1", SIDECAR_MAX_OUTCOME_WATCHES="20")
    watches = [running.stub.WatchOutcomes(pb.WatchOutcomesRequest(from_now=True)) for _ in range(20)]
    for watch in watches:  # each holds its place once its headers came
        await _start_cursor(watch)

    refused = running.stub.WatchOutcomes(pb.WatchOutcomesRequest(from_now=True))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _collect(refused, lambda got: True, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "SIDECAR_MAX_OUTCOME_WATCHES" in (caught.value.details() or "")
    [retry] = _details(caught.value, error_details_pb2.RetryInfo)
    assert retry.retry_delay.seconds == 1
    [quota] = _details(caught.value, error_details_pb2.QuotaFailure)
    assert quota.violations[0].subject == "outcome_watches"

    await _send(running.stub, [_track(HEALTHY, "while-watched")])
    reply = await running.stub.Track(pb.TrackRequest(write_key=HEALTHY, user_id="u", event="Report Generated"))
    assert reply.message_id

    watches.pop().cancel()
    async with asyncio.timeout(10):
        while running.app.watch_places.taken >= 20:
            await asyncio.sleep(0.01)
    again = running.stub.WatchOutcomes(pb.WatchOutcomesRequest(from_now=True))
    await _start_cursor(again)
    for watch in (*watches, again):
        watch.cancel()
