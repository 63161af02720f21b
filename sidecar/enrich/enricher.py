"""Turn a validated :class:`~sidecar.model.Call` into an :class:`~sidecar.model.Event` with its final JSON.

Every event gets ``type``, a ``messageId`` (a UUID unless the caller sent one: a retried call must reuse its id for
Segment to de-duplicate it), a ``timestamp`` (ISO-8601 UTC with milliseconds; the time the sidecar received it unless
the caller said when it happened), ``context.integration`` (the partner program's required marker) and
``context.library``. The JSON is serialised here, once: nothing downstream touches an event's bytes again.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from sidecar import __version__
from sidecar.config import SEGMENT_MAX_EVENT_BYTES
from sidecar.errors import InvalidEvent
from sidecar.model import Call, Event, Warning

LIBRARY_NAME = "segment-sidecar"

# Segment's field order, for a readable payload: identity first, then what happened, then the envelope fields.
_FIELD_ORDER = (
    "event",
    "name",
    "category",
    "userId",
    "anonymousId",
    "groupId",
    "previousId",
    "properties",
    "traits",
    "context",
    "integrations",
)


class IsoClock:
    """ISO-8601 UTC strings with milliseconds, caching the formatted second: most events share it."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, seconds: float) -> str:
        """``2026-11-26T10:09:04.123Z`` for a Unix time."""
        whole = int(seconds // 1)
        return self.format_parts(whole, int((seconds - whole) * 1000))

    def format_parts(self, whole: int, millis: int) -> str:
        """The same, from whole seconds and milliseconds."""
        if whole != self._second:
            self._second = whole
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        return f"{self._prefix}.{millis:03d}Z"


class Enricher:
    """Adds the required fields and serialises the event; refuses one that ends up over Segment's 32 KB."""

    __slots__ = ("_clock", "_integration", "_library")

    def __init__(self, integration_name: str, integration_version: str) -> None:
        self._integration = {"name": integration_name, "version": integration_version}
        self._library = {"name": LIBRARY_NAME, "version": __version__}
        self._clock = IsoClock()

    def __call__(self, call: Call, warnings: list[Warning]) -> Event:
        """The enriched, serialised event."""
        fields = call.fields
        message_id = fields.get("messageId") or str(uuid.uuid4())
        context: dict[str, Any] = dict(call.parsed.get("context") or {})
        if "integration" in context and context["integration"] != self._integration:
            warnings.append(
                Warning(
                    "context.integration_replaced",
                    "context.integration",
                    "context.integration is set by the sidecar from SIDECAR_INTEGRATION_NAME; "
                    "the value sent was replaced",
                )
            )
        context["integration"] = self._integration
        context["library"] = self._library

        event: dict[str, Any] = {"type": call.type.value}
        for name in _FIELD_ORDER:
            if name in fields:
                event[name] = fields[name]
        event["context"] = context
        event["messageId"] = message_id
        stamp = fields.get("timestamp")
        event["timestamp"] = (
            self._clock.format(call.received_at) if stamp is None else self._clock.format_parts(stamp[0], stamp[1])
        )
        payload = orjson.dumps(event)
        if len(payload) > SEGMENT_MAX_EVENT_BYTES:
            largest = max(("properties", "traits", "context"), key=lambda key: len(orjson.dumps(event.get(key))))
            raise InvalidEvent.single(
                largest,
                f"the event is {len(payload)} bytes once enriched; Segment accepts at most {SEGMENT_MAX_EVENT_BYTES} "
                f"bytes per event: send less in {largest}",
            )
        return Event(call.write_key, call.region, message_id, payload, call.received_at)
