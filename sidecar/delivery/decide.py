"""What happens to a batch after one attempt: a pure function of the batch, the attempt's outcome and the time.

=====================================  =====================================================================
Outcome                                Decision
=====================================  =====================================================================
Delivered                              Remove: the events leave the spool
PartlyRejected(rejected)               Remove the others; dead-letter the rejected ones (REJECTED_EVENT)
Retry(after)                           RetryAt(now + max(backoff(attempts), after))
Split, more than one event             SplitBatch: its two halves go next, each split again if refused
Split, one event                       GiveUp(REFUSED_EVENT): that event is the bad one
Unauthorized                           ParkUntil(now + parked retry interval): the key is probed then
Permanent                              GiveUp(REFUSED_BATCH)
=====================================  =====================================================================

Nothing here holds events: a retried or split batch is read again from the spool by its key (its events are still
the key's oldest), so a decision only says *when* and *how much*.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sidecar.backoff import Backoff
from sidecar.model import Batch, DeadLetterReason
from sidecar.send.classify import Delivered, Outcome, PartlyRejected, Permanent, Retry, Split, Unauthorized


@dataclass(frozen=True, slots=True)
class Remove:
    """Delivered: remove the batch's events from the spool."""


@dataclass(frozen=True, slots=True)
class RemoveExcept:
    """Remove the batch's events except those at ``rejected`` (index, receiver's reason), which are dead-lettered."""

    rejected: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class RetryAt:
    """Send the key's oldest events again at ``at`` (same clock as ``now``)."""

    at: float
    reason: str
    renewed_credentials: bool = False


@dataclass(frozen=True, slots=True)
class SplitBatch:
    """The batch was refused whole: the key's next read takes at most ``max_events``, until past ``last_seq``."""

    max_events: int
    last_seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class ParkUntil:
    """The write key was refused: send nothing for it before ``at``, then probe it with one batch."""

    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Give the batch's events up: the shell dead-letters them with a reason label and the receiver's answer (the
    spool keeps a :class:`~sidecar.spool.store.DeadLetter` record of each)."""

    reason: DeadLetterReason
    detail: str


Decision = Remove | RemoveExcept | RetryAt | SplitBatch | ParkUntil | GiveUp


@dataclass(frozen=True, slots=True)
class DecisionRules:
    """The timing rules decisions follow (from Settings)."""

    backoff: Backoff
    parked_retry_interval: float


def decide(
    batch: Batch, outcome: Outcome, now: float, rules: DecisionRules, rng: random.Random | None = None
) -> Decision:
    """The decision for ``batch`` after an attempt that ended with ``outcome`` at ``now``; see the module table."""
    if isinstance(outcome, Delivered):
        return Remove()
    if isinstance(outcome, PartlyRejected):
        valid = tuple((index, reason) for index, reason in outcome.rejected if 0 <= index < len(batch.events))
        return RemoveExcept(valid) if valid else Remove()
    if isinstance(outcome, Retry):
        delay = rules.backoff.delay(batch.attempts, outcome.after, rng)
        return RetryAt(now + delay, outcome.reason, outcome.renewed_credentials)
    if isinstance(outcome, Split):
        if len(batch.events) > 1:
            return SplitBatch(len(batch.events) // 2, batch.events[-1].seq, outcome.reason)
        return GiveUp(DeadLetterReason.REFUSED_EVENT, outcome.reason)
    if isinstance(outcome, Unauthorized):
        return ParkUntil(now + rules.parked_retry_interval, outcome.reason)
    if isinstance(outcome, Permanent):
        return GiveUp(DeadLetterReason.REFUSED_BATCH, outcome.reason)
    raise TypeError(f"no decision for outcome {outcome!r}")  # pragma: no cover - the union is exhaustive
