"""The checks Segment's Tracking API makes on ``POST /v1/batch``, as pure functions (thread-safe, tested alone).

``POST /v1/batch`` gets the checks Segment documents (shared/reference/segment-http-api.md, sections 2-5), in this
order, each answered with a JSON body ``{"code": ..., "message": ...}`` like Segment's errors:

=====================================================================  ======  ======================
check                                                                  status  code
=====================================================================  ======  ======================
``Authorization: Basic base64("<key>:")`` present, key not empty        401     unauthorized
(or ``Bearer`` accepted by :attr:`Collector.bearer_verifier`, with
``writeKey`` in the body); key not in ``faults.revoked_write_keys``
``Content-Type: application/json``                                      400     invalid_content_type
body (after gzip decompression) at most 500,000 bytes                   400     request_too_large
a JSON object with a ``batch`` list                                     400     invalid_json / invalid_batch
at most 2,500 events                                                    400     too_many_events
each event an object of at most 32,768 bytes (compact JSON)             400     event_too_large
each event: valid ``type``; ``userId`` or ``anonymousId``;              400     invalid_event /
``messageId`` under 100 characters; track ``event``, group                      no_user_anon_id
``groupId``, alias ``previousId``
no ``messageId`` in ``faults.reject_message_ids``                       400     invalid_event
=====================================================================  ======  ======================

Success is ``200 {"success": true}``. Two places are deliberately stricter than Segment so that a sender's mistakes
show up in tests: Segment answers 200 to a batch of more than 2,500 events and silently drops the extra ones, and
it may answer 200 to an event without a user id and drop it; here both are a 400. Injected faults
(:mod:`sidecar.collector.faults`) are decided before these checks.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from sidecar.config import (
    SEGMENT_MAX_BATCH_BYTES,
    SEGMENT_MAX_BATCH_EVENTS,
    SEGMENT_MAX_EVENT_BYTES,
    SEGMENT_MAX_MESSAGE_ID_CHARS,
)
from sidecar.model import CallType

# Plain strings as keys: looking an event's ``type`` up here is the hot path of a 2,500-event batch.
_REQUIRED_BY_TYPE: dict[str, str | None] = {str(kind): None for kind in CallType} | {
    str(CallType.TRACK): "event",
    str(CallType.GROUP): "groupId",
    str(CallType.ALIAS): "previousId",
}


class BatchError(Exception):
    """A request refused by a Segment check: the HTTP status and the JSON error body's ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def parse_authorization(header: str | None) -> tuple[str | None, str | None]:
    """Split an Authorization header into (lower-case scheme, credential).

    For Basic the credential is the write key: the user name of ``base64("<key>:")`` (a value without the colon is
    taken whole, as Segment still does for old senders). Returns ``(None, None)`` without a header and
    ``("basic", None)`` for undecodable Basic credentials.
    """
    if not header:
        return None, None
    scheme, _, credential = header.strip().partition(" ")
    scheme = scheme.lower()
    credential = credential.strip()
    if scheme != "basic":
        return scheme, credential or None
    try:
        decoded = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return scheme, None
    return scheme, decoded.partition(":")[0] or None


def parse_batch(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Parse a ``/v1/batch`` body into (envelope, events), checking size, JSON and the event count.

    Raises :class:`BatchError` (400) for a body over 500,000 bytes, invalid JSON, no ``batch`` list or more than
    2,500 events. The events themselves are checked by :func:`check_event`.
    """
    if len(body) > SEGMENT_MAX_BATCH_BYTES:
        raise BatchError(400, "request_too_large", f"body is {len(body)} bytes; the limit is {SEGMENT_MAX_BATCH_BYTES}")
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BatchError(400, "invalid_json", f"invalid JSON: {exc}") from exc
    if not isinstance(envelope, dict):
        raise BatchError(400, "invalid_json", "the body must be a JSON object")
    events = envelope.get("batch")
    if not isinstance(events, list):
        raise BatchError(400, "invalid_batch", "the body must have a 'batch' list")
    if len(events) > SEGMENT_MAX_BATCH_EVENTS:
        # Segment answers 200 and drops the events past 2,500; refusing makes the sender's bug visible.
        raise BatchError(
            400, "too_many_events", f"batch has {len(events)} events; the limit is {SEGMENT_MAX_BATCH_EVENTS}"
        )
    return envelope, events


def check_event(index: int, event: Any) -> None:
    """Check one batch item as Segment does; raise :class:`BatchError` (400) naming the item and the field.

    An event's size is that of its compact JSON (UTF-8, as Segment's SDKs and the sidecar serialise it).
    """
    if not isinstance(event, dict):
        raise BatchError(400, "invalid_event", f"batch[{index}] is not a JSON object")
    size = len(orjson.dumps(event))
    if size > SEGMENT_MAX_EVENT_BYTES:
        raise BatchError(
            400, "event_too_large", f"batch[{index}] is {size} bytes; the limit is {SEGMENT_MAX_EVENT_BYTES}"
        )
    kind = event.get("type")
    required = _REQUIRED_BY_TYPE.get(kind, "?") if isinstance(kind, str) else "?"
    if required == "?":
        types = sorted(_REQUIRED_BY_TYPE)
        raise BatchError(400, "invalid_event", f"batch[{index}].type must be one of {types}, not {kind!r}")
    if not (_is_id(event.get("userId")) or _is_id(event.get("anonymousId"))):
        raise BatchError(400, "no_user_anon_id", f"batch[{index}] has neither userId nor anonymousId")
    message_id = event.get("messageId")
    if message_id is not None and (not isinstance(message_id, str) or len(message_id) > SEGMENT_MAX_MESSAGE_ID_CHARS):
        limit = SEGMENT_MAX_MESSAGE_ID_CHARS + 1
        raise BatchError(400, "invalid_event", f"batch[{index}].messageId must be a string under {limit} characters")
    if required is not None and not _is_id(event.get(required)):
        raise BatchError(400, "invalid_event", f"batch[{index}]: a {kind} call needs {required}")


def inspect_batch(body: bytes) -> tuple[dict[str, Any], list[Any], BatchError | None]:
    """Parse a body and check every event: (envelope, events, the first error or None). Pure, so thread-safe.

    The envelope and events are those parsed even when an event is bad, for the store to record.
    """
    try:
        envelope, events = parse_batch(body)
    except BatchError as exc:
        return {}, [], exc
    try:
        for index, event in enumerate(events):
            check_event(index, event)
    except BatchError as exc:
        return envelope, events, exc
    return envelope, events, None


def _is_id(value: Any) -> bool:
    """A usable identifier: a non-empty string, or a number (Segment's SDKs turn numbers into strings)."""
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, int | float) and not isinstance(value, bool)
