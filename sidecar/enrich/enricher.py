"""Turn a validated :class:`~sidecar.model.Call` into an :class:`~sidecar.model.Event` with its final JSON.

Every event gets ``type``, a ``messageId`` (a UUID unless the caller sent one: a retried call must reuse its id for
Segment to de-duplicate it), a ``timestamp`` (ISO-8601 UTC with milliseconds; the time the sidecar received it unless
the caller said when it happened), ``context.integration`` (the partner program's required marker) and
``context.library``. The JSON is serialised here, once: nothing downstream touches an event's bytes again.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import uuid_utils

from sidecar import __version__
from sidecar.config import SEGMENT_MAX_EVENT_BYTES
from sidecar.errors import InvalidEvent
from sidecar.model import Call, CallType, Event, Warning

LIBRARY_NAME = "segment-sidecar"

_TYPE_NAMES = {kind: kind.value for kind in CallType}
"""Plain strings for ``type``: an enum's ``.value`` goes through a descriptor, which shows on the hot path."""


class MessageIds:
    """Message ids: UUIDv7 (RFC 9562) from ``uuid-utils``, a maintained Rust implementation.

    A UUIDv7 is 48 bits of Unix milliseconds followed by random bits (uuid-utils keeps ids from one process ordered
    within a millisecond), so ids are unique across processes and restarts, sort by creation time, and parse as
    UUIDs everywhere. ``str(uuid_utils.uuid7())`` costs about 0.25 us on the benchmark machine (the standard library's
    ``str(uuid.uuid4())`` about 2.7 us), a small part of the sidecar's per-event budget. Ids made in the same
    millisecond share their first 12 hex digits: show them whole.
    """

    __slots__ = ("_new",)

    def __init__(self) -> None:
        self._new = uuid_utils.uuid7

    def __call__(self) -> str:
        """A new id, ``tttttttt-tttt-7rrr-Vrrr-rrrrrrrrrrrr`` (t: milliseconds, r: random or ordering bits)."""
        return str(self._new())


class IsoClock:
    """ISO-8601 UTC strings with milliseconds, caching the formatted second: most events share it.

    The last time formatted is cached whole as well: every event of one Batch call shares its receive time.
    """

    __slots__ = ("_last", "_last_text", "_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._last = -1.0
        self._last_text = ""

    def format(self, seconds: float) -> str:
        """``2026-11-26T10:09:04.123Z`` for a Unix time."""
        if seconds == self._last:
            return self._last_text
        whole = int(seconds // 1)
        text = self.format_parts(whole, int((seconds - whole) * 1000))
        self._last, self._last_text = seconds, text
        return text

    def format_parts(self, whole: int, millis: int) -> str:
        """The same, from whole seconds and milliseconds."""
        if whole != self._second:
            self._second = whole
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        return f"{self._prefix}.{millis:03d}Z"


MAX_REMEMBERED_CONTEXTS = 1024
"""Distinct caller contexts (as sent, in JSON bytes) whose enrichment is remembered."""
MAX_REMEMBERED_CONTEXT_BYTES = 4096
"""Longer contexts are enriched on every call and never remembered: the memo holds at most ~8 MiB."""

_REPLACED = Warning(
    "context.integration_replaced",
    "context.integration",
    "context.integration is set by the sidecar from SIDECAR_INTEGRATION_NAME; the value sent was replaced",
)


class _Context:
    """A caller context's enrichment: the JSON to embed (None: keep the caller's, an edge enriched it already) and
    whether the caller's ``integration`` was replaced."""

    __slots__ = ("json", "replaced")

    def __init__(self, json: orjson.Fragment | None, replaced: bool) -> None:
        self.json = json
        self.replaced = replaced


class Enricher:
    """Adds the required fields and serialises the event; refuses one that ends up over Segment's 32 KB.

    The context is the part of an event that repeats: the sidecar's own when the caller sends none (serialised once,
    here), and a caller's context sent as JSON bytes is usually the same bytes call after call, so its enrichment is
    remembered by them (bounded by :data:`MAX_REMEMBERED_CONTEXTS`; the memo starts over when full).
    """

    __slots__ = ("_clock", "_contexts", "_default_context", "_integration", "_library", "_message_ids")

    def __init__(self, integration_name: str, integration_version: str) -> None:
        self._integration = {"name": integration_name, "version": integration_version}
        self._library = {"name": LIBRARY_NAME, "version": __version__}
        self._default_context = orjson.Fragment(
            orjson.dumps({"integration": self._integration, "library": self._library})
        )
        self._contexts: dict[bytes, _Context] = {}
        self._clock = IsoClock()
        self._message_ids = MessageIds()

    def _enrich_context(self, caller_context: dict[str, Any]) -> _Context:
        integration = self._integration
        # An edge sidecar forwarding to this one (a gateway) sends events it enriched already: their context is kept
        # as written (docs/fleet.md), as are their messageId and timestamp below.
        if caller_context.get("integration") == integration and "library" in caller_context:
            return _Context(None, False)
        replaced = caller_context.get("integration", integration) != integration
        # The caller's keys keep their order; ours replace theirs in place or come last.
        context = {**caller_context, "integration": integration, "library": self._library}
        return _Context(orjson.Fragment(orjson.dumps(context)), replaced)

    def _context(self, call: Call) -> _Context | None:
        caller_context = call.parsed.get("context")
        if caller_context is None:
            return None
        key = call.context_json
        if not key or len(key) > MAX_REMEMBERED_CONTEXT_BYTES:
            return self._enrich_context(caller_context)
        found = self._contexts.get(key)
        if found is None:
            found = self._enrich_context(caller_context)
            if len(self._contexts) >= MAX_REMEMBERED_CONTEXTS:
                self._contexts.clear()
            self._contexts[key] = found
        return found

    def __call__(self, call: Call, warnings: list[Warning]) -> Event:
        """The enriched, serialised event."""
        fields = call.fields
        message_id = fields.get("messageId") or self._message_ids()
        # One C-level copy: to_call inserts the fields in Segment's order (identity, what happened, objects), so the
        # event needs no per-field loop. messageId and timestamp are then set (or overwritten) with their final form.
        event: dict[str, Any] = {"type": _TYPE_NAMES[call.type], **fields}
        context = self._context(call)
        if context is None:
            event["context"] = self._default_context
        else:
            if context.replaced:
                warnings.append(_REPLACED)
            if context.json is not None:
                event["context"] = context.json
        event["messageId"] = message_id
        stamp = fields.get("timestamp")
        event["timestamp"] = (
            self._clock.format(call.received_at) if stamp is None else self._clock.format_parts(stamp[0], stamp[1])
        )
        # orjson hands back its whole output buffer (about 4 KiB) whatever the length; an event waits in the spool's
        # read-ahead and its shard for a while, so keep an exact-size copy: 10x less memory per queued event.
        payload = memoryview(orjson.dumps(event)).tobytes()
        if len(payload) > SEGMENT_MAX_EVENT_BYTES:
            raise _too_big(event, fields, len(payload))
        return Event(call.write_key, call.region, message_id, payload, call.received_at)


_PROTO_NAMES = {"userId": "user_id", "anonymousId": "anonymous_id", "groupId": "group_id", "previousId": "previous_id"}
"""Segment JSON names whose proto field is spelled otherwise; objects are handled by :func:`_caller_field`."""


def _caller_field(key: str, fields: dict[str, Any]) -> str:
    """The field the caller set for the event's ``key``: ``integrations_json`` for JSON bytes, ``integrations`` for a
    Struct (or for an intake that hands over parsed JSON), ``user_id`` for ``userId``."""
    if type(fields.get(key)) is orjson.Fragment:
        return f"{key}_json"
    return _PROTO_NAMES.get(key, key)


def _too_big(event: dict[str, Any], fields: dict[str, Any], size: int) -> InvalidEvent:
    """The refusal of an event over Segment's limit, on the field that holds most of it, with the largest parts.

    Every top-level value is measured (only on this path, so its cost does not matter): the culprit may be any object
    the caller sent, or the context the sidecar completed.
    """
    sizes = sorted(((len(orjson.dumps(value)), key) for key, value in event.items()), reverse=True)
    parts = ", ".join(f"{_caller_field(key, fields)} {part:,} bytes" for part, key in sizes[:3])
    culprit = _caller_field(sizes[0][1], fields)
    return InvalidEvent.single(
        culprit,
        f"the event is {size:,} bytes once enriched; Segment accepts at most {SEGMENT_MAX_EVENT_BYTES:,} bytes per "
        f"event: send less in {culprit} (largest parts: {parts})",
    )
