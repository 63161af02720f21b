"""What the gRPC edge hands its work to: exactly one downstream, defined here and implemented outside ``api/``.

The edge converts a request into a :class:`~sidecar.model.Call` and knows nothing of validators, enrichment, the
spool or delivery: :class:`Downstream` prepares each call (checks and enrichment: raises a
:class:`~sidecar.errors.SidecarError` to refuse it), makes accepted events durable, and waits for delivery on Flush.
The composition root (``sidecar/app.py``) builds the implementation (:class:`sidecar.intake.Intake`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sidecar.model import Call, Event, Warning


class FlushCounts(Protocol):
    """What a Flush answers with."""

    @property
    def delivered(self) -> int:
        """Events delivered since start."""

    @property
    def dead_lettered(self) -> int:
        """Events given up on since start."""

    @property
    def parked(self) -> int:
        """Events waiting on parked (401/403) write keys."""

    @property
    def parked_hashes(self) -> tuple[str, ...]:
        """The short hashes of the parked write keys."""


class Downstream(Protocol):
    """The one stage after the gRPC edge."""

    @property
    def pending_events(self) -> int:
        """Accepted events not yet delivered or dead-lettered."""

    def prepare(self, call: Call) -> tuple[Event, list[Warning]]:
        """The event to spool and its warnings; raises InvalidEvent, CredentialsMissing... to refuse the call."""

    async def accept(self, events: Sequence[Event]) -> None:
        """Make prepared events durable (the acknowledgement boundary); raises CapacityExhausted or SpoolFailure."""

    async def flush(self) -> FlushCounts:
        """Wait until everything accepted so far is delivered, dead-lettered or parked."""
