"""An enriched event's JSON -> the ``BatchEvent`` a gateway's ``Batch`` RPC takes: a pure function.

An edge holds each event as the final JSON its enricher wrote (``type``, the call's fields, ``context``,
``messageId``, ``timestamp``). The gateway must re-validate it like any caller's, so it travels as an ordinary request:
string fields as themselves, JSON objects as their ``*_json`` bytes (re-serialised once here, never as a Struct, which
would turn integers into doubles), ``messageId`` as ``message_id`` (the gateway keeps it: a retry or a replay after a
crash carries the same id) and ``timestamp`` as a ``Timestamp`` at millisecond precision, the precision it was written
with. Since ``context.integration`` is already set, the gateway's enricher leaves ``context`` as the edge wrote it.
"""

from __future__ import annotations

import calendar
import time
from typing import Any

import orjson

from sidecar._proto import sidecar_pb2 as pb
from sidecar.model import Event, Region

_REGIONS = {Region.US: pb.REGION_US, Region.EU: pb.REGION_EU}
_REQUESTS: dict[str, Any] = {
    "track": pb.TrackRequest,
    "identify": pb.IdentifyRequest,
    "page": pb.PageRequest,
    "screen": pb.ScreenRequest,
    "group": pb.GroupRequest,
    "alias": pb.AliasRequest,
}
_STRINGS = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "event": "event",
    "name": "name",
    "category": "category",
    "groupId": "group_id",
    "previousId": "previous_id",
    "messageId": "message_id",
}
_OBJECTS = {
    "context": "context_json",
    "integrations": "integrations_json",
    "properties": "properties_json",
    "traits": "traits_json",
}


class UnforwardableEvent(ValueError):
    """The stored JSON is not an event this version can rebuild (it cannot happen for events it enriched itself)."""


def parse_timestamp(text: str) -> tuple[int, int]:
    """``2026-11-26T10:09:04.123Z`` -> (Unix seconds, nanoseconds)."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    digits = (fraction + "000000000")[:9]
    return seconds, int(digits)


def to_batch_event(event: Event) -> pb.BatchEvent:
    """The request a gateway would have received had the caller sent it there; raises UnforwardableEvent."""
    body = orjson.loads(event.payload)
    kind = body.get("type")
    request_class = _REQUESTS.get(kind) if isinstance(kind, str) else None
    if request_class is None:
        raise UnforwardableEvent(f"unknown event type {kind!r}")
    fields: dict[str, Any] = {"write_key": event.write_key, "region": _REGIONS[event.region]}
    for key, value in body.items():
        if key in _STRINGS:
            fields[_STRINGS[key]] = value
        elif key in _OBJECTS:
            fields[_OBJECTS[key]] = orjson.dumps(value)
        elif key == "timestamp":
            seconds, nanos = parse_timestamp(value)
            fields["timestamp"] = {"seconds": seconds, "nanos": nanos}
        elif key != "type":
            raise UnforwardableEvent(f"field {key!r} has no place in a {kind} request")
    try:
        request = request_class(**fields)
    except (TypeError, ValueError) as exc:
        raise UnforwardableEvent(str(exc)) from None
    return pb.BatchEvent(**{kind: request})
