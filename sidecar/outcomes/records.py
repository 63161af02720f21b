"""The values of the outcome log, shared by the spool that writes them, delivery that decides them, and the readers
that serve them (:mod:`sidecar.outcomes.service`). Pure data: this module imports only :mod:`sidecar.model`.

Kinds and states carry the numbers of ``segment.sidecar.v1.OutcomeKind`` and ``WriteKeyState``, so the gRPC edge
converts them without a table and the spool stores them as small integers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sidecar.model import write_key_hash

RESPONSE_CHARS = 1_000
"""Segment's answer is clipped to this many characters in a record (the proto documents the same figure)."""


class OutcomeKind(enum.IntEnum):
    """What a record says (the numbers of ``segment.sidecar.v1.OutcomeKind``)."""

    DELIVERED = 1
    DEAD_LETTERED = 2
    EXPIRED = 3
    KEY_REFUSED = 4
    KEY_RECOVERED = 5
    KEY_RETRYING = 6

    @property
    def final(self) -> bool:
        """True for an event's final record (not a key's change of state)."""
        return self <= OutcomeKind.EXPIRED


class KeyState(enum.IntEnum):
    """What Segment's answers say of a write key (the numbers of ``segment.sidecar.v1.WriteKeyState``)."""

    UNKNOWN = 1
    OK = 2
    REFUSED = 3
    RETRYING = 4


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """One record of the outcome log; ``seq`` is its place in the log (0 until the spool stored it)."""

    kind: OutcomeKind
    at: float
    """Unix time of the outcome."""
    fingerprint: str
    region: str
    message_id: str = ""
    reason: str = ""
    """A dead-letter reason code (``sidecar.model.DeadLetterReason`` values)."""
    status: int = 0
    response: str = ""
    accepted_at: float = 0.0
    seq: int = 0

    @property
    def size(self) -> int:
        """Bytes the record counts against SIDECAR_OUTCOMES_MAX_BYTES (its texts plus a fixed 48 for the numbers)."""
        return 48 + len(self.fingerprint) + len(self.message_id) + len(self.reason) + len(self.response.encode())


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A write key's state as stored (one row per key and region): when it entered it, and Segment's answer."""

    write_key: str
    region: str
    state: KeyState
    since: float
    """Unix time the key entered ``state`` (for REFUSED: Segment's first refusal, kept across restarts)."""
    status: int = 0
    response: str = ""

    @property
    def fingerprint(self) -> str:
        """The key's short hash (the one logs, metrics and pages show)."""
        return write_key_hash(self.write_key)


def clip(response: str) -> str:
    """Segment's answer as a record keeps it."""
    return response[:RESPONSE_CHARS]


class MessageState(enum.IntEnum):
    """Where one event is (the numbers of ``segment.sidecar.v1.MessageState``)."""

    UNKNOWN = 1
    WAITING = 2
    IN_FLIGHT = 3
    DELIVERED = 4
    DEAD_LETTERED = 5
    EXPIRED = 6


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """What the sidecar knows of one write key in one region (GetWriteKeyStatus, ListWriteKeys)."""

    fingerprint: str
    region: str
    state: KeyState
    since: float | None = None
    status: int = 0
    response: str = ""
    backlog_events: int = 0
    oldest_accepted_at: float | None = None
    last_delivered_at: float | None = None
    dead_letters_by_reason: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """Where one event is (GetMessageOutcome), with its final record once it has one."""

    state: MessageState
    record: OutcomeRecord | None = None
    fingerprint: str = ""
    region: str = ""
    accepted_at: float | None = None
