"""The spool's side of the outcome log: the records an event's removal or dead-lettering writes (in the store job
that removes it, so in the same transaction), the bounds they are pruned to (SIDECAR_OUTCOMES_MAX_AGE and
SIDECAR_OUTCOMES_MAX_BYTES, by the spool's pruner), and the news that records were written, for the readers that
wait on it (:class:`sidecar.outcomes.service.Outcomes`). No fsync of its own: records ride in the commits that
remove events."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sidecar.model import DeadLetterReason, SpooledEvent, write_key_hash
from sidecar.outcomes.records import OutcomeKind, OutcomeRecord, clip

DEFAULT_OUTCOMES_MAX_AGE = 24 * 3600.0
DEFAULT_OUTCOMES_MAX_BYTES = 64 * 2**20


def delivered(events: Sequence[SpooledEvent], at: float, status: int) -> list[OutcomeRecord]:
    """The DELIVERED records of events Segment answered 2xx for."""
    hashes: dict[str, str] = {}
    records = []
    for event in events:
        fingerprint = hashes.get(event.write_key)
        if fingerprint is None:
            fingerprint = hashes[event.write_key] = write_key_hash(event.write_key)
        records.append(
            OutcomeRecord(
                OutcomeKind.DELIVERED,
                at,
                fingerprint,
                event.region.value,
                event.message_id,
                "",
                status,
                "",
                event.accepted_at,
            )
        )
    return records


def dead_lettered(
    events: Sequence[SpooledEvent], at: float, code: str, status: int, response: str
) -> list[OutcomeRecord]:
    """The DEAD_LETTERED (or EXPIRED) records of events given up on."""
    kind = OutcomeKind.EXPIRED if code == DeadLetterReason.EXPIRED.value else OutcomeKind.DEAD_LETTERED
    answer = clip(response)
    return [
        OutcomeRecord(
            kind, at, write_key_hash(e.write_key), e.region.value, e.message_id, code, status, answer, e.accepted_at
        )
        for e in events
    ]


class OutcomeNews:
    """Who to tell that records were written (on the event loop, after the store job that wrote them)."""

    def __init__(self, max_age: float, max_bytes: int) -> None:
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._listeners: list[Callable[[], None]] = []
        self.pruned = 0

    def listen(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each store job that wrote records."""
        self._listeners.append(listener)

    def written(self) -> None:
        """Records were committed."""
        for listener in self._listeners:
            listener()
