"""The spool's side of the outcome log: the records an event's removal or dead-lettering writes (in the store job
that removes it, so in the same transaction), the bounds they are pruned to (SIDECAR_OUTCOMES_MAX_AGE and
SIDECAR_OUTCOMES_MAX_BYTES, by the spool's pruner), and the news that records were written, for the readers that
wait on it (:class:`sidecar.outcomes.service.Outcomes`). No fsync of its own: records ride in the commits that
remove events."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sidecar.model import DeadLetterReason, ShardKey, SpooledEvent, write_key_hash
from sidecar.outcomes.records import OutcomeKind, Stamp, clip

DEFAULT_OUTCOMES_MAX_AGE = 24 * 3600.0
DEFAULT_OUTCOMES_MAX_BYTES = 64 * 2**20


def stamps(
    groups: Sequence[tuple[ShardKey, Sequence[SpooledEvent]]],
    kind: OutcomeKind,
    at: float,
    status: int,
    reason: str = "",
    response: str = "",
    gateway: str = "",
) -> list[tuple[Sequence[SpooledEvent], Stamp]]:
    """Each key's events (:func:`sidecar.model.by_key`'s groups) with their records' shared part."""
    answer = clip(response)
    return [
        (group, Stamp(kind, at, write_key_hash(write_key), region.value, status, reason, answer, gateway))
        for (write_key, region), group in groups
    ]


def dead_kind(code: str) -> OutcomeKind:
    """EXPIRED for the expired reason, else DEAD_LETTERED."""
    return OutcomeKind.EXPIRED if code == DeadLetterReason.EXPIRED.value else OutcomeKind.DEAD_LETTERED


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
