"""What delivery logs about each settled batch: delivered, retried, split, a write key parked or unparked."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from sidecar.delivery.decide import Decision, ParkUntil, Remove, RetryAt, SplitBatch
from sidecar.delivery.interfaces import DeliveryPolicy
from sidecar.model import Batch, write_key_hash
from sidecar.send.classify import Outcome

log = structlog.get_logger("sidecar.delivery")


def log_decision(
    batch: Batch,
    decision: Decision,
    outcome: Outcome | None,
    was_parked: bool,
    is_parked: bool,
    clock: Callable[[], float],
    policy: DeliveryPolicy,
) -> None:
    """Log one settled batch: ``outcome`` is None when it was not sent; ``was_parked`` and ``is_parked`` say whether
    its key was parked before and after the decision was settled; ``clock`` is the clock of the decision's times."""
    key = batch.shard
    hashed = write_key_hash(key[0])
    region = key[1].value
    if was_parked and not is_parked:
        log.info("write_key_unparked", write_key_hash=hashed, region=region)
    if isinstance(decision, Remove) and outcome is not None:
        gateway = getattr(outcome, "gateway", None)
        log.info(
            "batch_forwarded" if gateway else "batch_delivered",
            write_key_hash=hashed,
            region=region,
            events=len(batch.events),
            bytes=batch.payload_bytes,
            attempts=batch.attempts + 1,
            **({"gateway": gateway} if gateway else {"status": getattr(outcome, "status", 0)}),
        )
    elif isinstance(decision, RetryAt):
        log.warning(
            "batch_retry",
            write_key_hash=hashed,
            region=region,
            reason=decision.reason,
            attempt=batch.attempts + 1,
            delay=round(max(0.0, decision.at - clock()), 3),
        )
    elif isinstance(decision, SplitBatch):
        log.warning(
            "batch_split", write_key_hash=hashed, region=region, reason=decision.reason, events=len(batch.events)
        )
    elif isinstance(decision, ParkUntil) and not was_parked:
        log.error(
            "write_key_parked",
            write_key_hash=hashed,
            region=region,
            reason=decision.reason,
            retry_in=policy.parked_retry_interval,
            hint="the write key is revoked or belongs to the other region",
        )
