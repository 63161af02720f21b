"""The gRPC edge's second downstream: the outcome log and key status (GetWriteKeyStatus, ListWriteKeys,
WatchOutcomes, GetMessageOutcome), defined here as a small Protocol and implemented outside ``api/``
(:class:`sidecar.outcomes.service.Outcomes`, wired in ``sidecar/app.py``), with the conversions to the proto."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Sequence
from typing import Protocol

from google.protobuf import timestamp_pb2

from sidecar._proto import sidecar_pb2 as pb
from sidecar.errors import InvalidEvent
from sidecar.model import Region
from sidecar.outcomes.records import KeyStatus, MessageOutcome, OutcomeRecord

START_CURSOR_HEADER = "outcome-start-cursor"
"""The response header of every WatchOutcomes stream naming the cursor it starts after: a client that loses the
stream before its first record resumes from it (asking ``from_now`` again would skip what was written meanwhile)."""

_TO_PROTO_REGION = {Region.US.value: pb.REGION_US, Region.EU.value: pb.REGION_EU}
_FROM_PROTO_REGION = {pb.REGION_US: Region.US, pb.REGION_EU: Region.EU}


class OutcomesDownstream(Protocol):
    """What the edge asks of the outcome log."""

    async def key_status(self, write_key: str, region: Region) -> KeyStatus:
        """One key's status."""

    async def list_keys(self, page_size: int, page_token: str, state: int) -> tuple[list[KeyStatus], str]:
        """One page of key statuses and the next page's token."""

    async def watch(
        self, after_cursor: str, write_keys: Sequence[str], kinds: Iterable[int], from_now: bool
    ) -> tuple[str, AsyncGenerator[OutcomeRecord, None]]:
        """The cursor a watch starts after (every check done), and its records: those after it, then new ones."""

    def cursor_of(self, record: OutcomeRecord) -> str:
        """A record's opaque cursor."""

    async def message_outcome(self, message_id: str, write_key: str = "") -> MessageOutcome:
        """Where one event is."""


def region_of(region: int, default: Region) -> Region:
    """A request's region (UNSPECIFIED: the default); INVALID_ARGUMENT for an unknown number."""
    if region == pb.REGION_UNSPECIFIED:
        return default
    known: Region | None = _FROM_PROTO_REGION.get(region)  # type: ignore[call-overload]
    if known is None:
        raise InvalidEvent.single("region", f"unknown region {region}; use REGION_US or REGION_EU")
    return known


def _time(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def key_status(status: KeyStatus) -> pb.WriteKeyStatus:
    """A key's status as the proto says it."""
    return pb.WriteKeyStatus(
        fingerprint=status.fingerprint,
        region=_TO_PROTO_REGION.get(status.region, pb.REGION_UNSPECIFIED),
        state=int(status.state),  # type: ignore[arg-type]
        state_since=_time(status.since),
        last_status=status.status,
        last_response=status.response,
        backlog_events=status.backlog_events,
        oldest_accepted_at=_time(status.oldest_accepted_at),
        last_delivered_at=_time(status.last_delivered_at),
        dead_letters_by_reason=status.dead_letters_by_reason or {},
    )


def outcome(record: OutcomeRecord, cursor: str) -> pb.Outcome:
    """One record of the log as the proto says it."""
    return pb.Outcome(
        cursor=cursor,
        kind=int(record.kind),  # type: ignore[arg-type]
        time=_time(record.at),
        write_key_fingerprint=record.fingerprint,
        region=_TO_PROTO_REGION.get(record.region, pb.REGION_UNSPECIFIED),
        message_id=record.message_id,
        dead_letter_reason=record.reason,
        segment_status=record.status,
        segment_response=record.response,
    )


def message_outcome(found: MessageOutcome, cursor: str) -> pb.GetMessageOutcomeResponse:
    """GetMessageOutcome's answer."""
    return pb.GetMessageOutcomeResponse(
        state=int(found.state),  # type: ignore[arg-type]
        outcome=None if found.record is None else outcome(found.record, cursor),
        write_key_fingerprint=found.fingerprint,
        region=_TO_PROTO_REGION.get(found.region, pb.REGION_UNSPECIFIED),
        accepted_at=_time(found.accepted_at),
    )
