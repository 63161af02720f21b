"""An event over Segment's 32 KB once enriched is refused on the field the caller must shrink, whichever it is."""

from __future__ import annotations

import orjson
import pytest
from google.protobuf import struct_pb2

from sidecar._proto import sidecar_pb2 as pb
from sidecar.api.convert import to_call
from sidecar.config import SEGMENT_MAX_EVENT_BYTES
from sidecar.enrich.enricher import Enricher
from sidecar.errors import InvalidEvent
from sidecar.model import CallType, Region

BASE = {"write_key": "wk", "user_id": "u1"}
BIG = 30_000
"""Under the 32,768-byte limit of one ``*_json`` field, so that only the enriched event is over Segment's limit."""


def _blob(size: int) -> bytes:
    return orjson.dumps({"pad": "x" * size})


def refused_field(call_type: CallType, request: object) -> tuple[str, str]:
    """The field and description of the enricher's refusal of ``request``."""
    call = to_call(call_type, request, Region.US, 0.0)
    with pytest.raises(InvalidEvent) as error:
        Enricher("partner", "1.0")(call, [])
    (violation,) = error.value.violations
    return violation.field, violation.description


@pytest.mark.parametrize(
    ("call_type", "request_type", "big", "small", "field"),
    [
        (CallType.TRACK, pb.TrackRequest, "integrations_json", "properties_json", "integrations_json"),
        (CallType.TRACK, pb.TrackRequest, "properties_json", "integrations_json", "properties_json"),
        (CallType.TRACK, pb.TrackRequest, "context_json", "properties_json", "context_json"),
        (CallType.IDENTIFY, pb.IdentifyRequest, "traits_json", "context_json", "traits_json"),
        (CallType.ALIAS, pb.AliasRequest, "integrations_json", "context_json", "integrations_json"),
    ],
)
def test_the_largest_field_is_named_as_the_caller_sent_it(
    call_type: CallType, request_type: type, big: str, small: str, field: str
) -> None:
    """The oversized JSON field is named (``integrations_json``, not ``context``), with the event's size and parts."""
    extra = {"event": "Custom Thing"} if call_type is CallType.TRACK else {}
    if call_type is CallType.ALIAS:
        extra = {"previous_id": "p1"}
    request = request_type(**BASE, **extra, **{big: _blob(BIG), small: _blob(3_000)})
    named, description = refused_field(call_type, request)
    assert named == field
    assert f"send less in {field}" in description
    assert f"{SEGMENT_MAX_EVENT_BYTES:,}" in description
    assert small in description  # the next largest part is shown too


def test_a_struct_is_named_by_its_struct_field() -> None:
    """Integrations sent as a Struct are blamed on ``integrations``, the field the caller set."""
    integrations = struct_pb2.Struct()
    integrations.update({"pad": "x" * BIG})
    request = pb.TrackRequest(**BASE, event="E", integrations=integrations, properties_json=_blob(3_000))
    assert refused_field(CallType.TRACK, request)[0] == "integrations"
