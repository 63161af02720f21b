"""What the delivery shell (:mod:`sidecar.delivery.driver`) needs and gives: the spool, pacing and observers it is
given, the policy it follows (from Settings), and what a flush reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sidecar.delivery.scheduler import BacklogView
from sidecar.model import Batch, ShardKey, SpooledEvent
from sidecar.send.backoff import Backoff
from sidecar.send.classify import Outcome


class DeliverySpool(Protocol):
    """What delivery needs of the spool (its per-key read API)."""

    @property
    def last_seq(self) -> int:
        """Seq of the newest acknowledged event."""

    @property
    def pending_events(self) -> int:
        """Undelivered events."""

    def backlogs(self) -> Mapping[ShardKey, BacklogView]:
        """Every key with events waiting."""

    def subscribe(self, listener: Callable[[ShardKey, BacklogView | None], None]) -> None:
        """Be told of every change of a key's backlog."""

    async def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent]:
        """The key's next events after ``after_seq``."""

    async def remove(self, events: Sequence[SpooledEvent]) -> None:
        """Delivered: forget them."""

    async def dead_letter(self, events: Sequence[SpooledEvent], reason: str, response: str) -> None:
        """Give them up."""

    async def take_replays(self) -> int:
        """Re-queue dead letters marked for replay."""


class Paced(Protocol):
    """A sender chain with a rate limiter in front (:class:`~sidecar.send.chain.SenderChain`)."""

    @property
    def paced(self) -> bool:
        """Whether each attempt waits for a grant."""

    def on_grant(self, listener: Callable[[], None]) -> None:
        """Be told of each grant."""


class DeliveryObserver(Protocol):
    """Told what delivery does, for metrics and the debugger page."""

    def batch_settled(self, batch: Batch, outcome: Outcome, seconds: float) -> None:
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
    pending: int = 0
