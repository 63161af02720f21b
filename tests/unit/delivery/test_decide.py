"""decide() as a table: each outcome of an attempt maps to one decision, without an event loop."""

from __future__ import annotations

import random

import pytest
from structlog.testing import capture_logs

from sidecar.backoff import Backoff
from sidecar.delivery.decide import (
    Decision,
    DecisionRules,
    GiveUp,
    ParkUntil,
    Remove,
    RemoveExcept,
    RetryAt,
    SplitBatch,
    decide,
)
from sidecar.delivery.decision_log import log_decision
from sidecar.delivery.interfaces import DeliveryPolicy
from sidecar.model import Batch, DeadLetterReason, Region, SpooledEvent
from sidecar.send.classify import Delivered, Outcome, PartlyRejected, Permanent, Retry, Split, Unauthorized

RULES = DecisionRules(Backoff(base=1.0, cap=8.0), parked_retry_interval=300.0)
NOW = 1_000.0


def batch(events: int, attempts: int = 0) -> Batch:
    """A batch of ``events`` events, seqs 1..n."""
    spooled = [SpooledEvent("wk", Region.US, f"m{i}", b"{}", 0.0, seq=i) for i in range(1, events + 1)]
    return Batch(("wk", Region.US), spooled, 3 * events, attempts)


@pytest.mark.parametrize(
    ("outcome", "events", "expected"),
    [
        (Delivered(200), 4, Remove()),
        (PartlyRejected(((1, "bad"), (9, "out of range"))), 4, RemoveExcept(((1, "bad"),))),
        (PartlyRejected(()), 4, Remove()),
        (Split("HTTP 400", 400), 4, SplitBatch(2, 4, "HTTP 400")),
        (Split("HTTP 413", 413), 1, GiveUp(DeadLetterReason.REFUSED_EVENT, "HTTP 413")),
        (Unauthorized("HTTP 401", 401), 4, ParkUntil(NOW + 300.0, "HTTP 401")),
        (Permanent("HTTP 404", 404), 4, GiveUp(DeadLetterReason.REFUSED_BATCH, "HTTP 404")),
    ],
)
def test_outcomes_map_to_decisions(outcome: Outcome, events: int, expected: Decision) -> None:
    """Each outcome gets its documented decision."""
    assert decide(batch(events), outcome, NOW, RULES) == expected


def test_a_retry_waits_for_the_backoff_or_the_server_delay_whichever_is_longer() -> None:
    """RetryAt is now + max(jittered backoff of the attempt, Retry-After), within the cap."""
    rng = random.Random(7)
    plain = decide(batch(2, attempts=3), Retry("HTTP 503", None, 503), NOW, RULES, rng)
    assert isinstance(plain, RetryAt) and NOW <= plain.at <= NOW + 8.0
    slow = decide(batch(2), Retry("HTTP 429", 30.0, 429), NOW, RULES, rng)
    assert isinstance(slow, RetryAt) and slow.at == NOW + 30.0
    renewed = decide(batch(2), Retry("HTTP 401 (token renewed)", 0.0, 401, renewed_credentials=True), NOW, RULES)
    assert isinstance(renewed, RetryAt) and renewed.renewed_credentials


def test_every_dead_letter_reason_has_a_sentence() -> None:
    """The enum labels metrics; its sentence is what the dead-letter store keeps."""
    for reason in DeadLetterReason:
        assert reason.description and str(reason) == reason.value


def test_a_batch_accepted_by_a_gateway_is_logged_as_forwarded_not_delivered() -> None:
    """Segment's 200 logs ``batch_delivered`` with the status; a gateway's acceptance (an edge in two tiers) logs
    ``batch_forwarded`` naming the gateway, so an edge's log never claims a delivery to Segment."""
    policy = DeliveryPolicy(1.0, 475_000, 2_500, 8, 86_400.0, 300.0, 86_400.0, Backoff(base=1.0, cap=8.0))
    with capture_logs() as logs:
        for outcome in (Delivered(200), Delivered(200, gateway="gw-1:50051")):
            log_decision(batch(3), Remove(), outcome, False, False, lambda: NOW, policy)
    delivered, forwarded = logs
    assert delivered["event"] == "batch_delivered" and delivered["status"] == 200 and "gateway" not in delivered
    assert forwarded["event"] == "batch_forwarded" and forwarded["gateway"] == "gw-1:50051"
    assert "status" not in forwarded and forwarded["events"] == 3
