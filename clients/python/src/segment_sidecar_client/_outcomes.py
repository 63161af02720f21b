"""What became of events and write keys: the outcome API's values, and when a watch reconnects.

The sidecar answers ``GetWriteKeyStatus``, ``ListWriteKeys`` and ``GetMessageOutcome`` once, and streams its outcome
log with ``WatchOutcomes``. The clients turn the messages into the frozen values below; :class:`Reconnects` is the
pure arithmetic of a watch that resumes by itself (see :meth:`AsyncClient.watch_outcomes`).

A watch reconnects after UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED it did not cause, or a stream the sidecar ended,
for as long as the caller keeps iterating: without a give-up after 5 attempts, because a sidecar that restarts is
worth waiting for. The wait before reconnect ``n`` (counted since the last record received) follows the clients' one
retry policy: random in ``[0, min(2 s, 0.2 s * 2**(n-1))]``, at least the server's ``RetryInfo``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from segment_sidecar_client._errors import SidecarError
from segment_sidecar_client._events import Region
from segment_sidecar_client._proto import sidecar_pb2
from segment_sidecar_client._retry import RetryPolicy


class OutcomeKind(str, enum.Enum):
    """What a record of the outcome log says (``DELIVERED``: Segment answered 2xx, not that it kept the event)."""

    UNSPECIFIED = "UNSPECIFIED"
    DELIVERED = "DELIVERED"
    DEAD_LETTERED = "DEAD_LETTERED"
    EXPIRED = "EXPIRED"
    KEY_REFUSED = "KEY_REFUSED"
    KEY_RECOVERED = "KEY_RECOVERED"
    KEY_RETRYING = "KEY_RETRYING"

    @classmethod
    def parse(cls, value: OutcomeKind | str) -> OutcomeKind:
        """Accept an OutcomeKind, ``"delivered"``/``"DELIVERED"`` or ``"OUTCOME_KIND_DELIVERED"``."""
        if isinstance(value, OutcomeKind):
            return value
        try:
            return cls(value.upper().removeprefix("OUTCOME_KIND_"))
        except ValueError:
            raise ValueError(f"unknown outcome kind {value!r}: expected one of {[k.value for k in cls]}") from None


class WriteKeyState(str, enum.Enum):
    """What Segment's last answers say of a write key: OK, REFUSED (401/403), RETRYING (5xx/429/network), UNKNOWN."""

    UNSPECIFIED = "UNSPECIFIED"
    UNKNOWN = "UNKNOWN"
    OK = "OK"
    REFUSED = "REFUSED"
    RETRYING = "RETRYING"

    @classmethod
    def parse(cls, value: WriteKeyState | str | None) -> WriteKeyState:
        """Accept a WriteKeyState, ``"refused"``/``"REFUSED"``, ``"WRITE_KEY_STATE_REFUSED"`` or None (every state)."""
        if value is None:
            return cls.UNSPECIFIED
        if isinstance(value, WriteKeyState):
            return value
        try:
            return cls(value.upper().removeprefix("WRITE_KEY_STATE_"))
        except ValueError:
            raise ValueError(f"unknown write key state {value!r}: expected one of {[s.value for s in cls]}") from None


class MessageState(str, enum.Enum):
    """Where one event is: UNKNOWN (not within the window), WAITING, IN_FLIGHT, or final."""

    UNSPECIFIED = "UNSPECIFIED"
    UNKNOWN = "UNKNOWN"
    WAITING = "WAITING"
    IN_FLIGHT = "IN_FLIGHT"
    DELIVERED = "DELIVERED"
    DEAD_LETTERED = "DEAD_LETTERED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class Outcome:
    """One record of the outcome log; pass its ``cursor`` as ``after_cursor`` to resume after it."""

    cursor: str
    kind: OutcomeKind
    time: dt.datetime | None
    write_key_fingerprint: str
    region: Region
    message_id: str = ""
    """The event's message id (event records only)."""
    dead_letter_reason: str = ""
    segment_status: int = 0
    """Segment's HTTP status in the answer that decided it (0: none, or a network error)."""
    segment_response: str = ""


@dataclass(frozen=True)
class WriteKeyStatus:
    """What the sidecar knows of one write key in one region (for a settings page's "Segment connection")."""

    fingerprint: str
    region: Region
    state: WriteKeyState
    state_since: dt.datetime | None
    last_status: int
    last_response: str
    backlog_events: int
    oldest_accepted_at: dt.datetime | None
    last_delivered_at: dt.datetime | None
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteKeyPage:
    """One page of :meth:`AsyncClient.list_write_keys`; ``next_page_token`` is empty on the last page."""

    write_keys: tuple[WriteKeyStatus, ...]
    next_page_token: str


@dataclass(frozen=True)
class MessageOutcome:
    """Where one event is; ``outcome`` is its final record once it has one."""

    state: MessageState
    outcome: Outcome | None
    write_key_fingerprint: str
    region: Region
    accepted_at: dt.datetime | None


def _time(message: Any, name: str) -> dt.datetime | None:
    """An aware UTC datetime from a Timestamp field, or None when it is unset."""
    if not message.HasField(name):
        return None
    value: dt.datetime = getattr(message, name).ToDatetime(tzinfo=dt.timezone.utc)
    return value


def _region(number: int) -> Region:
    return Region.parse(sidecar_pb2.Region.Name(number))


def outcome_of(message: Any) -> Outcome:
    """An :class:`Outcome` from its message."""
    return Outcome(
        cursor=message.cursor,
        kind=OutcomeKind.parse(sidecar_pb2.OutcomeKind.Name(message.kind)),
        time=_time(message, "time"),
        write_key_fingerprint=message.write_key_fingerprint,
        region=_region(message.region),
        message_id=message.message_id,
        dead_letter_reason=message.dead_letter_reason,
        segment_status=message.segment_status,
        segment_response=message.segment_response,
    )


def status_of(message: Any) -> WriteKeyStatus:
    """A :class:`WriteKeyStatus` from its message."""
    return WriteKeyStatus(
        fingerprint=message.fingerprint,
        region=_region(message.region),
        state=WriteKeyState.parse(sidecar_pb2.WriteKeyState.Name(message.state)),
        state_since=_time(message, "state_since"),
        last_status=message.last_status,
        last_response=message.last_response,
        backlog_events=message.backlog_events,
        oldest_accepted_at=_time(message, "oldest_accepted_at"),
        last_delivered_at=_time(message, "last_delivered_at"),
        dead_letters_by_reason=dict(message.dead_letters_by_reason),
    )


def page_of(response: Any) -> WriteKeyPage:
    """A :class:`WriteKeyPage` from a ``ListWriteKeysResponse``."""
    return WriteKeyPage(tuple(status_of(s) for s in response.write_keys), response.next_page_token)


def message_outcome_of(response: Any) -> MessageOutcome:
    """A :class:`MessageOutcome` from a ``GetMessageOutcomeResponse``."""
    name = sidecar_pb2.MessageState.Name(response.state).removeprefix("MESSAGE_STATE_")
    return MessageOutcome(
        state=MessageState(name),
        outcome=outcome_of(response.outcome) if response.HasField("outcome") else None,
        write_key_fingerprint=response.write_key_fingerprint,
        region=_region(response.region),
        accepted_at=_time(response, "accepted_at"),
    )


START_CURSOR_HEADER = "outcome-start-cursor"
"""The response header naming the cursor a ``WatchOutcomes`` stream starts after."""


def start_cursor(headers: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The cursor a watch stream starts after, from its response headers ("" when the sidecar sent none)."""
    for key, value in headers or ():
        if key == START_CURSOR_HEADER and isinstance(value, str):
            return value
    return ""


def watch_request(
    after_cursor: str, write_keys: Iterable[str], kinds: Iterable[OutcomeKind | str], from_now: bool
) -> sidecar_pb2.WatchOutcomesRequest:
    """The ``WatchOutcomesRequest`` of one connection of a watch."""
    return sidecar_pb2.WatchOutcomesRequest(
        after_cursor=after_cursor,
        write_keys=list(write_keys),
        kinds=[f"OUTCOME_KIND_{OutcomeKind.parse(k).value}" for k in kinds],
        from_now=from_now and not after_cursor,
    )


class Reconnects:
    """When a watch reconnects: after a retryable failure, for ever, waiting as the retry policy says.

    The count of failures starts again with every record received, so a sidecar that restarts once a day is
    reconnected to after 0.2 s at most, and one that is down for long is polled every 2 s at most.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self.failures = 0

    def received(self) -> None:
        """A record arrived: the connection works."""
        self.failures = 0

    def wait_after(self, error: SidecarError | None) -> float | None:
        """Seconds to wait before reconnecting after ``error`` (None: the stream ended), or None to raise it."""
        if error is not None and not error.retryable:
            return None
        self.failures += 1
        delay = self._policy.backoff(self.failures)
        return max(delay, error.retry_after or 0.0) if error is not None else delay
