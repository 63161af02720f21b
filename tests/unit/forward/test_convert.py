"""An edge's enriched JSON, rebuilt as a BatchEvent, enriches on a gateway into the very same JSON."""

from __future__ import annotations

import orjson
import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar.api.convert import BATCH_KINDS, to_call
from sidecar.enrich.enricher import Enricher
from sidecar.forward.convert import UnforwardableEvent, parse_timestamp, to_batch_event
from sidecar.model import Event, Region, Warning

REQUESTS = [
    pb.BatchEvent(track=pb.TrackRequest(write_key="wk", user_id="u", event="Report Generated",
                                        properties_json=b'{"n":3,"x":2.5,"s":"\\u00e9"}',
                                        context_json=b'{"ip":"1.2.3.4"}')),
    pb.BatchEvent(identify=pb.IdentifyRequest(write_key="wk", anonymous_id="a", traits_json=b'{"email":"a@b.c"}')),
    pb.BatchEvent(page=pb.PageRequest(write_key="wk", user_id="u", name="Home", category="Docs",
                                      integrations_json=b'{"All":false}')),
    pb.BatchEvent(screen=pb.ScreenRequest(write_key="wk", user_id="u", name="Inbox")),
    pb.BatchEvent(group=pb.GroupRequest(write_key="wk", user_id="u", group_id="g", traits_json=b'{"plan":"pro"}')),
    pb.BatchEvent(alias=pb.AliasRequest(write_key="wk", user_id="u", previous_id="p", message_id="mine-1")),
]  # fmt: skip


def enrich(
    item: pb.BatchEvent, enricher: Enricher, region: Region = Region.US, warnings: list[Warning] | None = None
) -> Event:
    """What a sidecar's intake makes of one batch item."""
    kind = item.WhichOneof("event")
    assert kind is not None
    call = to_call(BATCH_KINDS[kind], getattr(item, kind), region, 1_790_000_000.1234)
    return enricher(call, [] if warnings is None else warnings)


@pytest.mark.parametrize("item", REQUESTS, ids=lambda item: item.WhichOneof("event"))
def test_a_forwarded_event_is_enriched_into_the_same_json(item: pb.BatchEvent) -> None:
    """Edge enriches, converts, gateway (another process, same integration) enriches again: the same JSON object
    (integers still integers), the same message id, timestamp to the millisecond, no warning."""
    edge = enrich(item, Enricher("acme-mail", "1.0.0"))
    forwarded = to_batch_event(edge)
    warnings: list[Warning] = []
    again = enrich(forwarded, Enricher("acme-mail", "1.0.0"), Region.EU, warnings)  # the region travels with it
    assert orjson.loads(again.payload) == orjson.loads(edge.payload)
    assert b"3.0" not in again.payload
    assert again.message_id == edge.message_id
    assert again.region is Region.US
    assert not warnings


def test_eu_events_keep_their_region() -> None:
    """An EU event is forwarded as REGION_EU."""
    edge = enrich(REQUESTS[0], Enricher("acme-mail", "1.0.0"), Region.EU)
    assert to_batch_event(edge).track.region == pb.REGION_EU


def test_timestamps_parse_to_the_millisecond() -> None:
    """The enricher's ISO form reads back exactly."""
    assert parse_timestamp("2026-11-26T10:09:04.123Z") == (1795687744, 123_000_000)


def test_a_payload_of_unknown_shape_is_refused() -> None:
    """An unknown type or field cannot be rebuilt: the sender dead-letters it rather than lose a field."""
    for payload in (b'{"type":"bogus"}', b'{"type":"track","event":"E","userId":"u","extra":1}'):
        with pytest.raises(UnforwardableEvent):
            to_batch_event(Event("wk", Region.US, "m", payload, 0.0))
    assert orjson.loads(b"{}") == {}
