"""The intake: the gRPC edge's one downstream (:class:`sidecar.api.downstream.Downstream`), built in ``app.py``.

It runs the validators (the partner rules, the Spec check, and with ``SIDECAR_OAUTH_REQUIRED`` the credentials
check), then the enricher; it appends accepted events to the spool and asks the dispatcher to flush. Keeping
this here, outside ``api/``, is what lets the edge import nothing from ``validate/``'s neighbours: ``enrich/``,
``spool/``, ``delivery/`` or ``send/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sidecar.delivery.interfaces import FlushResult
from sidecar.enrich.enricher import Enricher
from sidecar.model import Call, Event, SpooledEvent, Warning
from sidecar.validate.rules import Validator


class Acceptance(Protocol):
    """Where accepted events go (the spool): durable once :meth:`append` returns."""

    @property
    def pending_events(self) -> int:
        """Accepted events not yet delivered."""

    async def append(self, events: Sequence[Event]) -> list[SpooledEvent]:
        """Make the events durable; raises CapacityExhausted or SpoolFailure."""


class Flusher(Protocol):
    """What answers a Flush (the dispatcher)."""

    async def flush(self) -> FlushResult:
        """Wait until everything accepted so far is delivered, dead-lettered or parked."""


class Intake:
    """Validators, then the enricher; the spool for acceptance; the dispatcher for Flush."""

    __slots__ = ("_delivery", "_enricher", "_spool", "_validators")

    def __init__(
        self, validators: Sequence[Validator], enricher: Enricher, spool: Acceptance, delivery: Flusher
    ) -> None:
        self._validators = tuple(validators)
        self._enricher = enricher
        self._spool = spool
        self._delivery = delivery

    @property
    def pending_events(self) -> int:
        """Accepted events still in the spool."""
        return self._spool.pending_events

    def prepare(self, call: Call) -> tuple[Event, list[Warning]]:
        """The enriched event and its warnings; a validator raises InvalidEvent or CredentialsMissing to refuse."""
        warnings: list[Warning] = []
        for validator in self._validators:  # in order; the first refusal ends the call
            validator(call, warnings)
        return self._enricher(call, warnings), warnings

    async def accept(self, events: Sequence[Event]) -> None:
        """Append to the spool: durable once this returns."""
        await self._spool.append(events)

    async def flush(self) -> FlushResult:
        """The dispatcher's flush."""
        return await self._delivery.flush()
