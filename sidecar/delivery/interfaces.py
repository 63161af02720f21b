"""What the dispatcher (:mod:`sidecar.delivery.dispatcher`) needs and gives: the spool and the sender it is given,
the observers it tells, the policy it follows (from Settings), and what a flush reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sidecar.backoff import Backoff
from sidecar.delivery.scheduler import Oldest
from sidecar.model import Backlog, Batch, ShardKey, SpooledEvent
from sidecar.outcomes.records import KeyRecord, OutcomeRecord
from sidecar.send.auth import Authorization
from sidecar.send.classify import Outcome


class SpoolListener(Protocol):
    """What the spool tells its downstream, on the event loop, in the order it happened."""

    def recovered(self, backlogs: Mapping[ShardKey, Backlog], last_seq: int) -> None:
        """What the spool held when it opened, per key; no event's seq is above ``last_seq``."""

    def appended(self, events: Sequence[SpooledEvent]) -> None:
        """Events joined the queue (a commit of appends, or dead letters replayed), in seq order."""


class DeliverySpool(Protocol):
    """What delivery needs of the spool: storage of events by key, and the news of what joined it."""

    def subscribe(self, listener: SpoolListener) -> None:
        """Be told what the spool holds (at once if it is open) and every append and replay from then on."""

    async def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent]:
        """The key's next events after ``after_seq``."""

    async def remove(self, events: Sequence[SpooledEvent], status: int = 200) -> Mapping[ShardKey, Oldest] | None:
        """Delivered (Segment answered ``status``): forget them, with their outcome records; each key's oldest event
        left (a key with none is absent; None: not known)."""

    async def dead_letter(
        self, events: Sequence[SpooledEvent], reason: str, response: str, code: str = "", status: int = 0
    ) -> Mapping[ShardKey, Oldest] | None:
        """Give them up (``code``: the reason's code), with their outcome records; as :meth:`remove`."""

    async def record_key(self, record: KeyRecord, outcome: OutcomeRecord | None) -> None:
        """Store a key's new state, and its record on the outcome log when it has one."""

    async def take_replays(self) -> int:
        """Re-queue dead letters marked for replay."""


class Sender(Protocol):
    """Makes one attempt for a batch, in two steps, so that the dispatcher takes a rate grant only once the attempt
    can start at once: :meth:`authorize` (may wait, for an OAuth token), then the grant, then :meth:`send`."""

    async def start(self) -> None:
        """Begin (open the connection pool); return quickly."""

    async def stop(self) -> None:
        """End; idempotent, safe without start."""

    async def authorize(self, batch: Batch) -> Authorization | Outcome:
        """The credentials of the next attempt, or the outcome of an attempt that cannot be made (no token now:
        ``Retry``; credentials refused: ``Unauthorized``). Never raises for a network failure."""

    async def send(self, batch: Batch, authorization: Authorization) -> Outcome:
        """Start the request now and classify its answer; never raises for an HTTP or network failure."""

    async def confirm(self) -> None:
        """Wait until what was sent is delivered or dead-lettered by whoever delivers it (a gateway tier's Flush);
        at once when the sender's answers were the deliveries (Segment's)."""


class DeliveryObserver(Protocol):
    """Told what delivery does, for metrics and the debugger page."""

    def attempt_finished(self, batch: Batch, outcome: Outcome, seconds: float) -> None:
        """One attempt finished with ``outcome`` after ``seconds``."""

    def dead_lettered(self, events: Sequence[SpooledEvent], reason: str) -> None:
        """Events were given up on; ``reason`` is a :class:`~sidecar.model.DeadLetterReason`."""

    def rate_limited(self, seconds: float) -> None:
        """A request waited this long for the rate limiter."""


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """The timing and size rules delivery follows (from Settings)."""

    flush_interval: float
    batch_max_bytes: int
    batch_max_events: int
    max_in_flight: int
    max_event_age: float
    parked_retry_interval: float
    parked_dead_letter_after: float
    backoff: Backoff


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What a flush saw: totals since start, and what waits on parked keys."""

    delivered: int
    dead_lettered: int
    parked: int
    parked_hashes: tuple[str, ...]
