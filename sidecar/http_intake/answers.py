"""What the HTTP intake answers: one table from outcomes to statuses, bodies in Segment's error shape.

=====================================================  ======  ==============================  ===================
Outcome                                                Status  ``code``                        Library retries?
=====================================================  ======  ==============================  ===================
every event spooled (durable)                          200     body ``{"success": true}``      no
some or all events refused, the others spooled         400     ``events_refused``              no (analytics-go
                                                                                               v3.3 does; see
                                                                                               :mod:`.recent`)
body over its limit, invalid JSON or gzip, no write    400     ``request_too_large``,          no
key, a bad ``Authorization`` header                            ``invalid_json``...
the sidecar's token missing (listening beyond          401     ``unauthorized``                no
loopback with ``SIDECAR_AUTH_TOKEN``)
a web page's cross-origin write, a foreign ``Host``    403     ``forbidden``                   no
not one of Segment's paths / not ``POST``              404 /   ``not_found`` /                 no
                                                       405     ``method_not_allowed``
the body did not arrive within its time limit          408     ``request_timeout``             yes
spool full / too many requests in progress             429     ``spool_full`` / ``busy``,      yes, after
                                                               with ``Retry-After``            ``Retry-After``
shutting down / the spool's disk failed                503     ``shutting_down`` /             yes
                                                               ``spool_failure``
=====================================================  ======  ==============================  ===================

Every 429 and 5xx is answered before any event of the request is spooled (the spool appends a request's events in
one commit), so a library's retry never sends an event twice. Segment itself answers 200 and drops refused events
silently; the sidecar names them instead (README, "Already using a Segment library?").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from sidecar.errors import CapacityExhausted, FieldViolation, ServerBusy, ShuttingDown, SidecarError, SpoolFailure
from sidecar.http_intake.parse import json_field

MAX_LISTED_REFUSALS = 100
"""Refused events named one by one in an answer; a request refusing more says how many it left out."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        """The body as JSON bytes."""
        return orjson.dumps(self.body)


SUCCESS = Answer(200, {"success": True})


def problem(status: int, code: str, message: str, retry_after: float | None = None) -> Answer:
    """Segment's error shape, ``{"code", "message"}``, with ``Retry-After`` (whole seconds, at least 1) if given."""
    headers = {} if retry_after is None else {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return Answer(status, {"code": code, "message": message}, headers)


def for_error(error: SidecarError) -> Answer:
    """The answer to an error that refuses the whole request (nothing of it was spooled)."""
    if isinstance(error, ServerBusy):
        return problem(429, "busy", str(error), error.retry_after)
    if isinstance(error, CapacityExhausted):
        return problem(429, "spool_full", str(error), error.retry_after)
    if isinstance(error, ShuttingDown):
        return problem(503, "shutting_down", str(error), 1.0)
    if isinstance(error, SpoolFailure):
        return problem(503, "spool_failure", str(error), 1.0)
    return problem(500, "internal", "internal error in the sidecar; see its log")


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused event: where it was in the request, its messageId if it had one, and why."""

    index: int
    message_id: str | None
    violations: tuple[FieldViolation, ...]
    reason: str

    def as_json(self) -> dict[str, Any]:
        """The event's entry in a 400 answer: its first field and reason, and every violation."""
        fields = [{"field": json_field(v.field), "reason": v.description} for v in self.violations]
        first = fields[0] if fields else {"field": "event", "reason": self.reason}
        return {"index": self.index, "messageId": self.message_id, **first, "violations": fields}


def refused(refusals: list[Refusal], total: int) -> Answer:
    """400 naming each refused event; the other events of the request were accepted."""
    accepted = total - len(refusals)
    listed = refusals[:MAX_LISTED_REFUSALS]
    first = listed[0].as_json()
    message = (
        f"{len(refusals)} of {total} events refused, {accepted} accepted; "
        f"first: index {first['index']}, {first['field']}: {first['reason']}"
    )
    body: dict[str, Any] = {
        "code": "events_refused",
        "message": message,
        "accepted": accepted,
        "refused": [refusal.as_json() for refusal in listed],
    }
    if len(refusals) > len(listed):
        body["refused_not_listed"] = len(refusals) - len(listed)
    return Answer(400, body)
