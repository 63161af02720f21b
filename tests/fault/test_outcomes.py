"""The outcome log with real processes: a sidecar process delivering to the local collector (one key revoked, one
key with some events refused, healthy keys), a watcher following WatchOutcomes that is killed and resumed from its
last cursor, and the sidecar SIGKILLed mid-delivery and restarted on the same spool. Exactly one final record per
acknowledged event, nothing missed and nothing twice; the revoked key's REFUSED-since survives the restart; once the
collector accepts the key again the stream carries KEY_RECOVERED and the key's status says OK."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import grpc

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.collector.server import Collector
from sidecar.model import write_key_hash
from tests.fault.conftest import ProcessFactory, Traffic

KEYS = ["wk-one", "wk-two", "wk-picky", "wk-revoked"]
PICKY, REVOKED = KEYS[2], KEYS[3]


class Follower:
    """Follows WatchOutcomes from its last cursor, reconnecting by itself when the sidecar goes away; can be stopped
    (killed) and a new one started from :attr:`cursor`."""

    def __init__(self, address: str, cursor: str = "") -> None:
        self.address = address
        self.cursor = cursor
        self.records: list[pb.Outcome] = []
        self.changed = asyncio.Event()
        self.errors: list[grpc.StatusCode] = []

    async def run(self) -> None:
        """Follow until cancelled."""
        while True:
            try:
                async with grpc.aio.insecure_channel(self.address) as channel:
                    stub = pb_grpc.SidecarServiceStub(channel)
                    async for reply in stub.WatchOutcomes(pb.WatchOutcomesRequest(after_cursor=self.cursor)):
                        self.records.append(reply.outcome)
                        self.cursor = reply.outcome.cursor
                        self.changed.set()
            except grpc.aio.AioRpcError as error:
                # The sidecar was killed (the stream breaks) or is restarting (UNAVAILABLE): try again shortly.
                self.errors.append(error.code())
                await asyncio.sleep(0.1)

    async def wait(self, condition: object, timeout: float = 30.0) -> None:
        """Wait until ``condition(records)`` holds."""
        async with asyncio.timeout(timeout):
            while not condition(self.records):  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()


async def _status(address: str, write_key: str) -> pb.WriteKeyStatus:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await pb_grpc.SidecarServiceStub(channel).GetWriteKeyStatus(
            pb.GetWriteKeyStatusRequest(write_key=write_key), timeout=5
        )
    return reply.status


def _finals(records: list[pb.Outcome]) -> list[pb.Outcome]:
    return [r for r in records if r.kind in (pb.OUTCOME_KIND_DELIVERED, pb.OUTCOME_KIND_DEAD_LETTERED)]


async def test_one_final_record_per_event_across_watcher_kills_and_a_sidecar_sigkill(
    collector: Collector, sidecar_process: ProcessFactory
) -> None:
    """The Done-when of the outcome log, with real processes (see the module docstring)."""
    rejected = {f"m-{n:07d}" for n in range(2, 2000, 40)}  # every tenth of the picky key's events
    collector.faults.reject_message_ids.update(rejected)
    collector.faults.revoked_write_keys.add(REVOKED)
    process = sidecar_process(SIDECAR_PARKED_RETRY_INTERVAL="200ms", SIDECAR_PARKED_DEAD_LETTER_AFTER="1h")
    process.start()
    await process.wait_ready()
    traffic = Traffic(process.address, KEYS, batch_size=40)

    follower = Follower(process.address)
    task = asyncio.create_task(follower.run())
    await traffic.run(10)
    await follower.wait(lambda got: len(got) >= 100)
    # The watcher is killed mid-stream; a new one resumes from its last cursor.
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    kept = list(follower.records)
    follower = Follower(process.address, follower.cursor)
    task = asyncio.create_task(follower.run())

    await follower.wait(lambda got: any(r.kind == pb.OUTCOME_KIND_KEY_REFUSED for r in kept + got))
    before = await _status(process.address, REVOKED)
    assert (before.state, before.last_status) == (pb.WRITE_KEY_STATE_REFUSED, 401)

    # SIGKILL while events are being delivered, then a restart on the same spool.
    sending = asyncio.create_task(traffic.run(15, pause=0.01))
    await asyncio.sleep(0.3)
    process.kill()
    await sending
    restarted = sidecar_process(SIDECAR_PARKED_RETRY_INTERVAL="200ms", SIDECAR_PARKED_DEAD_LETTER_AFTER="1h")
    restarted.start()
    await restarted.wait_ready()
    after = await _status(restarted.address, REVOKED)
    assert after.state == pb.WRITE_KEY_STATE_REFUSED
    assert after.state_since == before.state_since

    await traffic.run(5)
    collector.faults.revoked_write_keys.clear()
    acknowledged = traffic.acknowledged

    def complete(got: list[pb.Outcome]) -> bool:
        records = kept + got
        return acknowledged <= {r.message_id for r in _finals(records)} and any(
            r.kind == pb.OUTCOME_KIND_KEY_RECOVERED for r in records
        )

    await follower.wait(complete, timeout=60)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    records = kept + follower.records
    assert set(follower.errors) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
    cursors = [r.cursor for r in records]
    assert len(set(cursors)) == len(cursors), "a record came twice"
    finals = _finals(records)
    counts = Counter(r.message_id for r in finals)
    # Every acknowledged event has its final record; so may events of a Batch the SIGKILL cut off before its answer
    # (spooled, then killed before replying: at least once), and nothing else.
    assert acknowledged <= set(counts) <= acknowledged | traffic.unanswered
    assert max(counts.values()) == 1, [m for m, c in counts.items() if c > 1][:5]
    for record in finals:
        if record.message_id in rejected:
            assert (record.kind, record.dead_letter_reason, record.segment_status) == (
                pb.OUTCOME_KIND_DEAD_LETTERED,
                "refused_event",
                400,
            )
        else:
            assert record.kind == pb.OUTCOME_KIND_DELIVERED, record
    recovered = [r for r in records if r.kind == pb.OUTCOME_KIND_KEY_RECOVERED]
    assert [r.write_key_fingerprint for r in recovered] == [write_key_hash(REVOKED)]
    status = await _status(restarted.address, REVOKED)
    assert status.state == pb.WRITE_KEY_STATE_OK
