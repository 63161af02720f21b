"""End to end over real sockets: gRPC calls into a real sidecar, batches into real collectors."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from sidecar._proto import sidecar_pb2 as pb
from sidecar.config import SEGMENT_MAX_BATCH_EVENTS
from tests.conftest import SidecarFactory
from tests.support.harness import Collectors, SidecarUnderTest, field_violations

KEY_US = "wk-us-1"
KEY_EU = "wk-eu-1"


def struct(values: dict[str, object]) -> struct_pb2.Struct:
    """A Struct holding values."""
    result = struct_pb2.Struct()
    result.update(values)
    return result


async def flush(running: SidecarUnderTest, timeout: float = 10.0) -> pb.FlushResponse:
    """Flush and return the response."""
    return await running.stub.Flush(pb.FlushRequest(), timeout=timeout)


async def test_each_call_arrives_with_the_required_fields(sidecar: SidecarUnderTest, collectors: Collectors) -> None:
    """Every RPC's event reaches the collector with type, userId, context.integration/library, messageId, timestamp."""
    stub = sidecar.stub
    stamp = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=123_000_000)
    replies = [
        await stub.Track(
            pb.TrackRequest(
                write_key=KEY_US,
                user_id="u1",
                event="Email Opened",
                properties=struct({"email_id": "e1", "count": 3, "ratio": 0.5}),
            )
        ),
        await stub.Identify(
            pb.IdentifyRequest(
                write_key=KEY_US, user_id="u1", traits_json=b'{"email":"a@example.com"}', timestamp=stamp
            )
        ),
        await stub.Page(
            pb.PageRequest(
                write_key=KEY_US, user_id="u1", name="Pricing", category="Docs", properties_json=b'{"path":"/pricing"}'
            )
        ),
        await stub.Screen(pb.ScreenRequest(write_key=KEY_US, user_id="u1", name="Inbox")),
        await stub.Group(
            pb.GroupRequest(write_key=KEY_US, user_id="u1", group_id="g1", traits=struct({"name": "Acme"}))
        ),
        await stub.Alias(pb.AliasRequest(write_key=KEY_US, user_id="u1", previous_id="anon-1", message_id="alias-1")),
    ]
    await flush(sidecar)
    events = {event["messageId"]: event for event in collectors.us.store.events(KEY_US)}
    assert set(events) == {reply.message_id for reply in replies}
    assert replies[-1].message_id == "alias-1"
    by_type = {event["type"]: event for event in events.values()}
    assert set(by_type) == {"track", "identify", "page", "screen", "group", "alias"}
    for event in events.values():
        assert event["userId"] == "u1"
        assert event["context"]["integration"] == {"name": "acme-mail", "version": "1.0.0"}
        assert event["context"]["library"]["name"] == "segment-sidecar"
        assert event["timestamp"].endswith("Z") and len(event["timestamp"]) == len("2026-01-01T00:00:00.000Z")
    assert by_type["track"]["properties"] == {"email_id": "e1", "count": 3, "ratio": 0.5}
    assert isinstance(by_type["track"]["properties"]["count"], int)
    assert by_type["identify"]["timestamp"] == "2023-11-14T22:13:20.123Z"
    assert by_type["page"]["name"] == "Pricing" and by_type["page"]["category"] == "Docs"
    assert by_type["group"]["groupId"] == "g1" and by_type["group"]["traits"] == {"name": "Acme"}
    assert by_type["alias"]["previousId"] == "anon-1"


async def test_whole_numbers_in_json_and_struct_stay_integers(
    sidecar: SidecarUnderTest, collectors: Collectors
) -> None:
    """A whole number sent in a Struct (a double on the wire) reaches Segment as an integer, nested too."""
    await sidecar.stub.Track(
        pb.TrackRequest(
            write_key=KEY_US,
            user_id="u1",
            event="Report Generated",
            properties=struct({"n": 3, "nested": {"list": [1, 2.5, "x"], "big": 12345678901}}),
        )
    )
    await flush(sidecar)
    properties = collectors.us.store.events(KEY_US)[0]["properties"]
    assert properties == {"n": 3, "nested": {"list": [1, 2.5, "x"], "big": 12345678901}}
    # == treats 3 and 3.0 as equal, so check the JSON types too; Struct keys have no order, so check each value.
    assert type(properties["n"]) is int and type(properties["nested"]["big"]) is int
    assert [type(item) for item in properties["nested"]["list"]] == [int, float, str]


async def test_regions_route_to_their_endpoint_with_one_auth_header_per_key(
    sidecar: SidecarUnderTest, collectors: Collectors
) -> None:
    """US keys go to the US endpoint, EU keys to the EU one, each request authenticated by its own key."""
    for key, region in ((KEY_US, pb.REGION_US), (KEY_EU, pb.REGION_EU), ("wk-default", pb.REGION_UNSPECIFIED)):
        await sidecar.stub.Track(pb.TrackRequest(write_key=key, region=region, user_id="u", event="Report Generated"))
    await flush(sidecar)
    assert {r.write_key for r in collectors.us.store.requests} == {KEY_US, "wk-default"}
    assert {r.write_key for r in collectors.eu.store.requests} == {KEY_EU}
    for request in collectors.us.store.requests + collectors.eu.store.requests:
        assert request.auth_scheme == "basic"  # the collector reads write_key from the Basic credentials
        assert request.headers["User-Agent"].startswith("segment-sidecar/")


async def test_batches_respect_event_and_byte_limits(sidecar: SidecarUnderTest, collectors: Collectors) -> None:
    """6,000 small events fill bodies up to 475,000 bytes (enriched events are too big to reach 2,500 first)."""
    small = [
        pb.BatchEvent(track=pb.TrackRequest(write_key=KEY_US, user_id=f"u{i}", event="Report Generated"))
        for i in range(6000)
    ]
    padding = "x" * 20_000
    big = [
        pb.BatchEvent(
            track=pb.TrackRequest(
                write_key="wk-big", user_id=f"u{i}", event="Report Generated", properties=struct({"blob": padding})
            )
        )
        for i in range(60)
    ]
    reply = await sidecar.stub.Batch(pb.BatchRequest(events=small + big))
    assert reply.accepted == 6060 and reply.rejected == 0
    await flush(sidecar, timeout=20)
    requests = collectors.us.store.requests
    assert sum(len(r.events) for r in requests) == 6060
    assert max(len(r.events) for r in requests) <= SEGMENT_MAX_BATCH_EVENTS
    big_requests = [r for r in requests if r.write_key == "wk-big"]
    assert len(big_requests) >= 3
    assert all(r.body_bytes <= 475_000 for r in requests)
    assert max(r.body_bytes for r in big_requests) > 400_000, "batches should fill up to the byte limit"


async def test_batches_respect_the_event_limit(sidecar_factory: SidecarFactory, collectors: Collectors) -> None:
    """With an event limit lower than the byte limit allows, batches are cut at the event limit."""
    running = await sidecar_factory(SIDECAR_BATCH_MAX_EVENTS="500")
    events = [
        pb.BatchEvent(track=pb.TrackRequest(write_key=KEY_US, user_id=f"u{i}", event="Report Generated"))
        for i in range(1200)
    ]
    await running.stub.Batch(pb.BatchRequest(events=events))
    await flush(running)
    sizes = sorted(len(r.events) for r in collectors.us.store.requests)
    assert sizes[-2:] == [500, 500] and sum(sizes) == 1200


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.TrackRequest(user_id="u", event="Report Generated"), "write_key"),
        (pb.TrackRequest(write_key=KEY_US, event="Report Generated", anonymous_id="a"), "user_id"),
        (pb.TrackRequest(write_key=KEY_US, user_id="u"), "event"),
        (pb.TrackRequest(write_key=KEY_US, user_id="u", event="Report Generated", message_id="m" * 100), "message_id"),
        (
            pb.TrackRequest(write_key=KEY_US, user_id="u", event="Report Generated", properties_json=b"[1]"),
            "properties_json",
        ),
        (
            pb.TrackRequest(write_key=KEY_US, user_id="u", event="Report Generated", properties_json=b'{"a": NaN}'),
            "properties_json",
        ),
        (
            pb.TrackRequest(write_key=KEY_US, user_id="u", event="Report Generated", properties_json=b'{"a": "\xff"}'),
            "properties_json",
        ),
        (
            pb.TrackRequest(
                write_key=KEY_US,
                user_id="u",
                event="Report Generated",
                properties_json=b"{}",
                properties=struct({"a": 1}),
            ),
            "properties",
        ),
        (
            pb.TrackRequest(
                write_key=KEY_US, user_id="u", event="Report Generated", properties=struct({"blob": "y" * 33_000})
            ),
            "properties",
        ),
        (pb.TrackRequest(write_key=KEY_US, user_id="u", event="Report Generated", region=7), "region"),
        (pb.GroupRequest(write_key=KEY_US, user_id="u"), "group_id"),
        (pb.AliasRequest(write_key=KEY_US, user_id="u"), "previous_id"),
    ],
)
async def test_invalid_calls_get_invalid_argument_naming_the_field(
    sidecar: SidecarUnderTest, collectors: Collectors, request_: object, field: str
) -> None:
    """Each validation failure is INVALID_ARGUMENT with a readable message and a BadRequest violation on the field."""
    method = {
        pb.TrackRequest: sidecar.stub.Track,
        pb.GroupRequest: sidecar.stub.Group,
        pb.AliasRequest: sidecar.stub.Alias,
    }[type(request_)]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await method(request_)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Traceback" not in (error.details() or "")
    assert field in [name for name, _ in field_violations(error)], field_violations(error)
    assert sidecar.app.spool.appended_total == 0


async def test_one_bad_event_in_a_batch_does_not_reject_the_others(
    sidecar: SidecarUnderTest, collectors: Collectors
) -> None:
    """Batch answers per event; the valid ones are delivered."""
    reply = await sidecar.stub.Batch(
        pb.BatchRequest(
            events=[
                pb.BatchEvent(track=pb.TrackRequest(write_key=KEY_US, user_id="u1", event="Report Generated")),
                pb.BatchEvent(track=pb.TrackRequest(write_key=KEY_US, event="Report Generated")),
                pb.BatchEvent(identify=pb.IdentifyRequest(write_key=KEY_US, user_id="u3")),
                pb.BatchEvent(),
            ]
        )
    )
    kinds = [result.WhichOneof("result") for result in reply.results]
    assert kinds == ["message_id", "rejected", "message_id", "rejected"]
    assert reply.results[1].rejected.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert reply.results[1].rejected.field_violations[0].field == "user_id"
    await flush(sidecar)
    assert sorted(collectors.us.store.message_ids()) == sorted(
        [reply.results[0].message_id, reply.results[2].message_id]
    )


async def test_caller_integration_is_replaced_with_a_warning(sidecar: SidecarUnderTest, collectors: Collectors) -> None:
    """A caller's own context.integration is replaced and the response says so; other context keys stay."""
    reply = await sidecar.stub.Track(
        pb.TrackRequest(
            write_key=KEY_US,
            user_id="u",
            event="Report Generated",
            context_json=b'{"integration":{"name":"other"},"ip":"203.0.113.9","locale":"de-DE"}',
        )
    )
    assert [w.code for w in reply.warnings] == ["context.integration_replaced"]
    await flush(sidecar)
    context = collectors.us.store.events()[0]["context"]
    assert context["integration"]["name"] == "acme-mail"
    assert context["ip"] == "203.0.113.9" and context["locale"] == "de-DE"


async def test_request_rate_never_exceeds_the_cap(sidecar_factory: SidecarFactory, collectors: Collectors) -> None:
    """With more ready batches than the cap allows, the collector sees at most the cap in any one-second window."""
    running = await sidecar_factory(SIDECAR_MAX_REQUESTS_PER_SECOND="10", SIDECAR_FLUSH_INTERVAL="10ms")
    events = [
        pb.BatchEvent(track=pb.TrackRequest(write_key=f"wk-{i}", user_id="u", event="Report Generated"))
        for i in range(40)
    ]
    await running.stub.Batch(pb.BatchRequest(events=events))
    await flush(running, timeout=15)
    requests = collectors.us.store.requests
    assert len(requests) == 40
    assert collectors.us.store.max_requests_in_window(1.0) <= 10
    span = requests[-1].started_at - requests[0].started_at
    assert span >= 3.0, f"40 requests at <=10/s cannot take {span:.2f}s"


async def test_a_quiet_key_is_served_promptly_beside_a_busy_one(
    sidecar_factory: SidecarFactory, collectors: Collectors
) -> None:
    """While a busy key saturates the cap, a quiet key's event still arrives within the flush interval plus 2 s."""
    running = await sidecar_factory(SIDECAR_MAX_REQUESTS_PER_SECOND="5", SIDECAR_BATCH_MAX_EVENTS="1")
    busy = [
        pb.BatchEvent(track=pb.TrackRequest(write_key="wk-busy", user_id="u", event="Report Generated"))
        for _ in range(200)
    ]
    await running.stub.Batch(pb.BatchRequest(events=busy))
    await asyncio.sleep(0.5)  # let the busy key's backlog form and take the cap
    sent_at = time.monotonic()
    reply = await running.stub.Track(pb.TrackRequest(write_key="wk-quiet", user_id="q", event="Report Generated"))
    await collectors.us.store.wait_for_events(1, timeout=5.0, write_key="wk-quiet")
    waited = time.monotonic() - sent_at
    assert collectors.us.store.message_ids("wk-quiet") == [reply.message_id]
    assert waited < 0.1 + 2.0, waited


async def test_flush_returns_after_delivery(sidecar_factory: SidecarFactory, collectors: Collectors) -> None:
    """Flush does not wait for the flush interval and counts what was delivered."""
    running = await sidecar_factory(SIDECAR_FLUSH_INTERVAL="30s")
    for i in range(5):
        await running.stub.Track(pb.TrackRequest(write_key=KEY_US, user_id=f"u{i}", event="Report Generated"))
    started = time.monotonic()
    reply = await flush(running)
    assert time.monotonic() - started < 5
    assert reply.delivered == 5 and reply.dead_lettered == 0
    assert len(collectors.us.store.events()) == 5


async def test_flush_deadline_reports_pending(sidecar_factory: SidecarFactory, collectors: Collectors) -> None:
    """A Flush that cannot finish by its deadline answers DEADLINE_EXCEEDED with the count still pending."""
    collectors.us.faults.down = True
    running = await sidecar_factory()
    await running.stub.Track(pb.TrackRequest(write_key=KEY_US, user_id="u", event="Report Generated"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.stub.Flush(pb.FlushRequest(), timeout=1.0)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "1 events still waiting" in (raised.value.details() or "")


async def test_flush_counts_what_settled_since_the_previous_flush(sidecar: SidecarUnderTest) -> None:
    """Each Flush reports the events delivered since the previous Flush answered, not a running total since start."""
    for index in range(2):
        await sidecar.stub.Track(pb.TrackRequest(write_key="wk-flush-counts", user_id=f"u{index}", event="Signed Up"))
    assert (await flush(sidecar)).delivered == 2
    await sidecar.stub.Track(pb.TrackRequest(write_key="wk-flush-counts", user_id="u2", event="Signed Up"))
    assert (await flush(sidecar)).delivered == 1
    again = await flush(sidecar)
    assert again.delivered == 0 and again.dead_lettered == 0
