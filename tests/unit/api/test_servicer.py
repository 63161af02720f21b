"""The servicer on a real grpc.aio server on a loopback port, in front of the real intake, a real memory spool and a
real dispatcher delivering to the local collector: statuses, durability before OK, and Flush."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.api.places import Places
from sidecar.api.servicer import SidecarServicer
from sidecar.backoff import Backoff
from sidecar.collector.server import Collector
from sidecar.delivery.dispatcher import DeliveryPolicy, Dispatcher
from sidecar.enrich.enricher import Enricher
from sidecar.intake import Intake
from sidecar.model import Region
from sidecar.send.auth import BasicAuthenticator
from sidecar.send.http import HttpSender, envelope_overhead
from sidecar.spool import MemoryStore, Spool
from sidecar.validate.rules import default_validators
from tests.support.harness import field_violations

POLICY = DeliveryPolicy(
    flush_interval=0.05,
    batch_max_bytes=475_000,
    batch_max_events=2500,
    max_in_flight=8,
    max_event_age=3600.0,
    parked_retry_interval=60.0,
    parked_dead_letter_after=3600.0,
    backoff=Backoff(0.05, 0.2),
)


@dataclass
class Served:
    """A servicer on a loopback port, its stub, and the stages behind it."""

    servicer: SidecarServicer
    stub: pb_grpc.SidecarServiceStub
    spool: Spool


@pytest.fixture
async def served(collector: Collector) -> AsyncIterator[Served]:
    """The servicer, the intake and delivery, started; stopped in order after the test."""
    spool = Spool(MemoryStore(), 10**8)
    sender = HttpSender(dict.fromkeys(Region, collector.url), BasicAuthenticator(), 5.0)
    dispatcher = Dispatcher(spool, sender, POLICY, envelope_overhead)
    intake = Intake(default_validators(), Enricher("test-integration", "1.0.0"), spool, dispatcher)
    servicer = SidecarServicer(intake, Region.US, watch_places=Places(4))
    server = grpc.aio.server()
    pb_grpc.add_SidecarServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await spool.start()
    await sender.start()
    await dispatcher.start()
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(servicer, pb_grpc.SidecarServiceStub(channel), spool)  # type: ignore[no-untyped-call]
    finally:
        await channel.close()
        await server.stop(0)
        await dispatcher.stop()
        await sender.stop()
        await spool.stop()


async def test_a_track_is_durable_before_ok_and_flush_reports_its_delivery(
    served: Served, collector: Collector
) -> None:
    """OK comes once the event is in the spool; Flush answers after the collector has it, with the count."""
    reply = await served.stub.Track(pb.TrackRequest(write_key="wk", user_id="u1", event="Report Generated"))
    assert reply.message_id and served.spool.appended_total == 1
    flushed = await served.stub.Flush(pb.FlushRequest(), timeout=10)
    assert flushed.delivered == 1 and flushed.dead_lettered == 0 and flushed.parked == 0
    assert collector.store.message_ids() == [reply.message_id]


async def test_an_invalid_call_is_invalid_argument_naming_the_field(served: Served) -> None:
    """A Track without an event name is refused with INVALID_ARGUMENT and a field violation; nothing is spooled."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.stub.Track(pb.TrackRequest(write_key="wk", user_id="u1"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "event" in [name for name, _ in field_violations(refused.value)]
    assert "Traceback" not in (refused.value.details() or "")
    assert served.spool.appended_total == 0


async def test_a_batch_answers_each_event_and_spools_only_the_valid_ones(served: Served) -> None:
    """One bad event in a Batch is refused alone: the others are accepted and spooled."""
    good = pb.BatchEvent(track=pb.TrackRequest(write_key="wk", user_id="u1", event="Report Generated"))
    bad = pb.BatchEvent(track=pb.TrackRequest(write_key="wk", user_id="u1"))
    reply = await served.stub.Batch(pb.BatchRequest(events=[good, bad, good]))
    assert (reply.accepted, reply.rejected) == (2, 1)
    assert served.spool.appended_total == 2


async def test_a_flush_that_cannot_finish_by_its_deadline_says_how_many_wait(
    served: Served, collector: Collector
) -> None:
    """Segment down: Flush answers DEADLINE_EXCEEDED, naming the events still waiting, before the caller's deadline."""
    collector.faults.down = True
    await served.stub.Track(pb.TrackRequest(write_key="wk", user_id="u1", event="Report Generated"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await served.stub.Flush(pb.FlushRequest(), timeout=1.0)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "1 events still waiting" in (raised.value.details() or "")


async def test_a_servicer_that_stopped_accepting_answers_unavailable(served: Served) -> None:
    """While shutting down, calls get UNAVAILABLE (retryable elsewhere), not an error without a code."""
    served.servicer.accepting = False
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.stub.Track(pb.TrackRequest(write_key="wk", user_id="u1", event="Report Generated"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert served.spool.appended_total == 0
