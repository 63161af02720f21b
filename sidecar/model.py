"""The values that travel through the pipeline. This module imports nothing from the package.

An event is born in the gRPC edge as a :class:`Call` (the caller's fields, decoded and checked), becomes an
:class:`Event` once enriched (its final JSON is fixed from then on); the spool gives it a sequence number once it is
durable (a :data:`SpooledEvent`).
"""

from __future__ import annotations

import enum
import hashlib
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


class Region(enum.StrEnum):
    """A Segment region. A write key only works in the region of its workspace."""

    US = "us"
    EU = "eu"


class CallType(enum.StrEnum):
    """The six Segment Spec calls, named as the ``type`` field of the HTTP API."""

    TRACK = "track"
    IDENTIFY = "identify"
    PAGE = "page"
    SCREEN = "screen"
    GROUP = "group"
    ALIAS = "alias"


class DeadLetterReason(enum.StrEnum):
    """Why events were given up on. Metrics, the debugger and logs label from this value, never from prose."""

    PARKED_TOO_LONG = "parked_too_long"
    EXPIRED = "expired"
    REFUSED_EVENT = "refused_event"
    REFUSED_BATCH = "refused_batch"
    REJECTED_EVENT = "rejected_event"
    TOO_LARGE = "too_large"

    @property
    def description(self) -> str:
        """The sentence stored with the dead letters and shown by `segment-sidecar dead-letters`."""
        return _DEAD_LETTER_SENTENCES[self]


_DEAD_LETTER_SENTENCES = {
    DeadLetterReason.PARKED_TOO_LONG: "write key refused (401/403) for longer than SIDECAR_PARKED_DEAD_LETTER_AFTER",
    DeadLetterReason.EXPIRED: "not delivered within SIDECAR_MAX_EVENT_AGE",
    DeadLetterReason.REFUSED_EVENT: "Segment refused the event",
    DeadLetterReason.REFUSED_BATCH: "Segment refused the batch",
    DeadLetterReason.REJECTED_EVENT: "the gateway rejected this event of the batch (edge mode)",
    DeadLetterReason.TOO_LARGE: "its write key alone fills a request of SIDECAR_BATCH_MAX_BYTES: it can never be sent",
}


ShardKey = tuple[str, Region]
"""Events are batched and paced per (write key, region)."""


def write_key_hash(write_key: str) -> str:
    """A short, stable, non-reversible name for a write key, safe for logs, metrics and pages."""
    return hashlib.sha256(write_key.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Warning:
    """A finding that did not stop the event, returned to the caller with its acknowledgement."""

    code: str
    field: str
    message: str


@dataclass(slots=True)
class Call:
    """One call as the caller sent it, decoded: ``fields`` holds the Segment JSON fields set so far.

    ``fields`` uses Segment's JSON names (``userId``, ``properties``...). Object values may be ``dict`` or, when the
    caller sent raw JSON bytes, an ``orjson.Fragment`` kept beside its parsed form in ``parsed`` so that the bytes are
    never re-encoded.
    """

    type: CallType
    write_key: str
    region: Region
    fields: dict[str, Any]
    parsed: dict[str, dict[str, Any]]
    received_at: float
    context_json: bytes = b""
    """The caller's ``context`` as the JSON bytes it sent, when it sent them so, or as orjson writes the object the
    HTTP intake parsed (empty otherwise): the same bytes always enrich to the same context, so the enricher remembers
    the result by them."""


@dataclass(slots=True)
class Event:
    """An enriched event: ``payload`` is its final JSON exactly as it will be sent inside a batch.

    ``seq`` is 0 until the spool makes the event durable and numbers it (see :data:`SpooledEvent`); the spool sets it
    in place rather than building a second object, since every event of the ingest hot path would pay for one.
    Nothing else changes an event once it is built.
    """

    write_key: str
    region: Region
    message_id: str
    payload: bytes
    accepted_at: float
    seq: int = 0

    @property
    def shard(self) -> ShardKey:
        """The batching and pacing unit this event belongs to."""
        return (self.write_key, self.region)


SpooledEvent = Event
"""An :class:`Event` the spool has made durable: its ``seq`` orders events and identifies them in the spool."""


@dataclass(slots=True)
class Batch:
    """Events of one (write key, region) sent in one request; retried whole until split or settled."""

    shard: ShardKey
    events: list[SpooledEvent]
    payload_bytes: int
    attempts: int = 0
    auth_renewals: int = 0


@dataclass(frozen=True, slots=True)
class Backlog:
    """What one (write key, region) has waiting, summed without holding its events: the spool reports one per key
    when it opens (recovery), and the delivery scheduler keeps one per key from then on."""

    events: int
    """Undelivered, not dead-lettered events of this key."""
    bytes: int
    """Their payload bytes (``len(event.payload)`` summed)."""
    oldest_seq: int
    """The seq of the oldest of them."""
    oldest_accepted_at: float
    """Its acceptance time (Unix seconds, as ``SpooledEvent.accepted_at``)."""


_shard_of = operator.attrgetter("write_key", "region")
_payload_of = operator.attrgetter("payload")


def by_key(events: Sequence[Event]) -> list[tuple[ShardKey, Sequence[Event]]]:
    """The events per (write key, region), keys in first-seen order, each group in the events' order.

    One key (a caller's Batch, a lone Track, a delivered batch: nearly every time) is recognised in C and handed back
    as the sequence it came in, without a pass in Python."""
    if not events:
        return []
    if len(events) == 1 or len(set(map(_shard_of, events))) == 1:
        return [(events[0].shard, events)]
    groups: dict[ShardKey, list[Event]] = {}
    for event in events:
        groups.setdefault((event.write_key, event.region), []).append(event)
    return list(groups.items())


def payload_bytes(events: Iterable[Event]) -> int:
    """The events' payload bytes (``len(event.payload)`` summed, in C)."""
    return sum(map(len, map(_payload_of, events)))
