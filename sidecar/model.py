"""The values that travel through the pipeline. This module imports nothing from the package.

An event is born in the gRPC edge as a :class:`Call` (the caller's fields, decoded and checked), becomes an
:class:`Event` once enriched (its final JSON is fixed from then on), and a :class:`SpooledEvent` once the spool has
made it durable and given it a sequence number.
"""

from __future__ import annotations

import enum
import hashlib
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


@dataclass(frozen=True, slots=True)
class Event:
    """An enriched event: ``payload`` is its final JSON exactly as it will be sent inside a batch."""

    write_key: str
    region: Region
    message_id: str
    payload: bytes
    accepted_at: float

    @property
    def shard(self) -> ShardKey:
        """The batching and pacing unit this event belongs to."""
        return (self.write_key, self.region)


@dataclass(frozen=True, slots=True)
class SpooledEvent:
    """An event the spool has made durable; ``seq`` orders events and identifies them in the spool."""

    seq: int
    write_key: str
    region: Region
    message_id: str
    payload: bytes
    accepted_at: float

    @property
    def shard(self) -> ShardKey:
        """The batching and pacing unit this event belongs to."""
        return (self.write_key, self.region)


@dataclass(slots=True)
class Batch:
    """Events of one (write key, region) sent in one request; retried whole until split or settled."""

    shard: ShardKey
    events: list[SpooledEvent]
    payload_bytes: int
    attempts: int = 0
    auth_renewals: int = 0
    first_attempt_at: float = 0.0
