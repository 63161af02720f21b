"""The intake: the validators, then the enricher, then the spool for acceptance; the dispatcher for Flush. Real
validators, a real enricher, a real memory spool and a real dispatcher."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar.api.convert import to_call
from sidecar.backoff import Backoff
from sidecar.delivery.dispatcher import DeliveryPolicy, Dispatcher
from sidecar.enrich.enricher import Enricher
from sidecar.errors import CapacityExhausted, InvalidEvent
from sidecar.intake import Intake
from sidecar.model import CallType, Region
from sidecar.send.auth import BasicAuthenticator
from sidecar.send.http import HttpSender, envelope_overhead
from sidecar.spool import MemoryStore, Spool
from sidecar.validate.rules import default_validators

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


def track(event: str = "Report Generated") -> pb.TrackRequest:
    """A Track request of key ``wk``."""
    return pb.TrackRequest(write_key="wk", user_id="u1", event=event)


@pytest.fixture
async def spool() -> AsyncIterator[Spool]:
    """A started memory spool with room for about 1 KB of payloads."""
    started = Spool(MemoryStore(), 1_000)
    await started.start()
    yield started
    await started.stop()


def intake_of(spool: Spool) -> Intake:
    """An intake in front of ``spool``, flushing through a dispatcher that is never started (nothing to send)."""
    sender = HttpSender(dict.fromkeys(Region, "http://127.0.0.1:9"), BasicAuthenticator(), 1.0)
    dispatcher = Dispatcher(spool, sender, POLICY, envelope_overhead)
    return Intake(default_validators(), Enricher("test-integration", "2.0.0"), spool, dispatcher)


async def test_a_valid_call_is_enriched_and_made_durable(spool: Spool) -> None:
    """prepare() gives the final JSON with context.integration set; accept() makes it durable and counted."""
    intake = intake_of(spool)
    event, warnings = intake.prepare(to_call(CallType.TRACK, track(), Region.US, time.time()))
    body = orjson.loads(event.payload)
    assert body["context"]["integration"] == {"name": "test-integration", "version": "2.0.0"}
    assert body["event"] == "Report Generated" and body["messageId"] == event.message_id
    assert warnings == []
    await intake.accept([event])
    assert intake.pending_events == 1 and spool.appended_total == 1


async def test_a_call_a_validator_refuses_is_never_spooled(spool: Spool) -> None:
    """A Track without userId or anonymousId is refused by the partner rules, before the spool sees it."""
    intake = intake_of(spool)
    call = to_call(CallType.TRACK, pb.TrackRequest(write_key="wk", event="Report Generated"), Region.US, time.time())
    with pytest.raises(InvalidEvent):
        intake.prepare(call)
    assert spool.appended_total == 0


async def test_a_full_spool_refuses_with_a_retryable_error(spool: Spool) -> None:
    """Past the spool's bound, accept() raises CapacityExhausted (RESOURCE_EXHAUSTED with a delay) and keeps nothing."""
    intake = intake_of(spool)
    events = [intake.prepare(to_call(CallType.TRACK, track(), Region.US, time.time()))[0] for _ in range(20)]
    with pytest.raises(CapacityExhausted):
        await intake.accept(events)
    assert intake.pending_events == 0


async def test_flush_with_nothing_waiting_returns_at_once(spool: Spool) -> None:
    """Flush is the dispatcher's: with nothing accepted it answers at once, with zero counts."""
    result = await intake_of(spool).flush()
    assert (result.delivered, result.dead_lettered, result.parked, result.parked_hashes) == (0, 0, 0, ())
