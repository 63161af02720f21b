"""Segment's HTTP Tracking API requests, read into :class:`~sidecar.model.Call` s: pure functions, no I/O.

What a request may be, and what refuses it whole (:class:`RequestProblem`, an answer before any event is looked at):

=================================  ======================================================================
Part                               Rule
=================================  ======================================================================
path                               ``[/us|/eu]/v1/{batch,import,track,identify,page,screen,group,alias}``;
                                   the prefix chooses the region, none means ``SIDECAR_DEFAULT_REGION``
write key                          ``Authorization: Basic base64(<key>:)`` (password ignored), else
                                   ``writeKey`` in the body; a Bearer header (a library using OAuth) leaves
                                   the body's ``writeKey`` to decide
body size                          :data:`MAX_BATCH_BODY_BYTES` for batch, :data:`MAX_CALL_BODY_BYTES` for one
                                   call, counted after ``Content-Encoding: gzip`` is undone, which stops
                                   inflating one byte past the limit (a gzip bomb costs its limit, no more)
JSON                               one object; orjson refuses nesting past 1024 levels
=================================  ======================================================================

Each event of a batch is then read on its own by :func:`to_call`: a problem refuses that event alone, with the
field in Segment's JSON name (``userId``, ``properties.revenue``). A batch's own ``context`` and ``integrations``
are defaults that each event's keys override, as Segment merges them. Keys the sidecar has no rule for
(``originalTimestamp``, ``channel``, a library's ``_metadata``) pass through unchanged; ``writeKey``, ``sentAt`` and
``receivedAt`` do not (the sidecar sends its own ``sentAt``; Segment sets ``receivedAt``).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from sidecar.config import SEGMENT_MAX_BATCH_BYTES, SEGMENT_MAX_EVENT_BYTES, SEGMENT_MAX_MESSAGE_ID_CHARS
from sidecar.errors import FieldViolation, InvalidEvent
from sidecar.model import Call, CallType, Region
from sidecar.validate.json_keys import duplicate_violation, first_duplicate, has_duplicate_keys, recorded
from sidecar.validate.limits import MAX_JSON_DEPTH, MAX_STRING_CHARS, check_string, check_timestamp, json_depth_exceeds

MAX_BATCH_BODY_BYTES = SEGMENT_MAX_BATCH_BYTES
"""Largest batch body, inflated: Segment's 500 KB."""
MAX_CALL_BODY_BYTES = SEGMENT_MAX_EVENT_BYTES
"""Largest body of a single call (``/v1/track``...), inflated: Segment's 32 KB per event."""
GZIP_SLACK_BYTES = 64 * 1024
"""How much longer than its inflated limit a gzip body may be on the wire (incompressible data grows a little)."""
MAX_AUTHORIZATION_CHARS = 4 * MAX_STRING_CHARS
"""Longest ``Authorization`` value read: base64 of the longest write key with room to spare."""

_PATHS: dict[str, CallType | None] = {
    "batch": None,
    "import": None,
    **{kind.value: kind for kind in CallType},
}
_REGIONS = {"us": Region.US, "eu": Region.EU}
_LEADING: dict[CallType, tuple[str, ...]] = {
    CallType.TRACK: ("event",),
    CallType.PAGE: ("name", "category"),
    CallType.SCREEN: ("name",),
}
_TRAILING: dict[CallType, tuple[str, ...]] = {CallType.GROUP: ("groupId",), CallType.ALIAS: ("previousId",)}
_OBJECTS: dict[CallType, tuple[str, ...]] = {
    CallType.TRACK: ("properties",),
    CallType.IDENTIFY: ("traits",),
    CallType.PAGE: ("properties",),
    CallType.SCREEN: ("properties",),
    CallType.GROUP: ("traits",),
    CallType.ALIAS: (),
}
_IDS = ("userId", "anonymousId", "groupId", "previousId")
"""Ids a library may send as numbers (analytics-python turns them into strings; so does the sidecar)."""
_DROPPED = frozenset({"type", "writeKey", "sentAt", "receivedAt"})
_HANDLED = frozenset(
    {"userId", "anonymousId", "event", "name", "category", "groupId", "previousId", "properties", "traits"}
    | {"context", "integrations", "messageId", "timestamp"}
)
_KNOWN = _HANDLED | _DROPPED
"""Fields read (or dropped) by name; an event's other fields are copied as they are."""
_STRINGS = {kind: (*_LEADING.get(kind, ()), "userId", "anonymousId", *_TRAILING.get(kind, ())) for kind in CallType}
"""Per call type, its string fields in Segment's order."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PROTO_TO_JSON = {
    "write_key": "writeKey",
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "group_id": "groupId",
    "previous_id": "previousId",
    "message_id": "messageId",
    "properties_json": "properties",
    "traits_json": "traits",
    "context_json": "context",
    "integrations_json": "integrations",
}
"""The pipeline's validators name fields as the gRPC API spells them; an HTTP caller reads Segment's JSON names."""


class RequestProblem(Exception):
    """The request as a whole cannot be read: answered ``status`` with Segment's ``{"code", "message"}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request went: its region (None: the default region) and its call type (None: a batch)."""

    region: Region | None
    call_type: CallType | None

    @property
    def body_limit(self) -> int:
        """The largest inflated body this endpoint takes."""
        return MAX_BATCH_BODY_BYTES if self.call_type is None else MAX_CALL_BODY_BYTES

    @property
    def name(self) -> str:
        """``batch`` or the call type, for metrics."""
        return "batch" if self.call_type is None else self.call_type.value


def route(path: str) -> Route | None:
    """The route of a request path, or None when the path is not one of Segment's (a 404)."""
    parts = path.strip("/").split("/")
    region = None
    if len(parts) == 3 and parts[0] in _REGIONS:
        region = _REGIONS[parts[0]]
        parts = parts[1:]
    if len(parts) != 2 or parts[0] != "v1" or parts[1] not in _PATHS:
        return None
    return Route(region, _PATHS[parts[1]])


def write_key_from_header(authorization: str | None) -> str | None:
    """The write key of an ``Authorization: Basic`` header; None without one (or with a Bearer token)."""
    if authorization is None:
        return None
    if len(authorization) > MAX_AUTHORIZATION_CHARS:
        raise RequestProblem(
            400, "invalid_authorization", f"the Authorization header is over {MAX_AUTHORIZATION_CHARS} characters"
        )
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return None
    if scheme.lower() != "basic":
        raise RequestProblem(
            400, "invalid_authorization", "the Authorization header must be `Basic base64(<write key>:)`"
        )
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise RequestProblem(
            400, "invalid_authorization", "the Authorization header's credentials are not base64 of UTF-8 text"
        ) from None
    write_key = decoded.partition(":")[0]
    if not write_key:
        raise RequestProblem(400, "invalid_authorization", "the Authorization header carries an empty write key")
    return write_key


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body with its ``Content-Encoding`` undone, refused past ``limit`` bytes without inflating further."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        if len(body) > limit:
            raise too_large(limit)
        return body
    if encoding != "gzip":
        raise RequestProblem(400, "unsupported_encoding", f"Content-Encoding {encoding!r}: only gzip is accepted")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RequestProblem(400, "invalid_gzip", f"the gzip body does not inflate: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise too_large(limit, inflated=True)
    if not inflater.eof or inflater.unused_data:
        raise RequestProblem(400, "invalid_gzip", "the gzip body is truncated or followed by other data")
    return out


def too_large(limit: int, *, inflated: bool = False) -> RequestProblem:
    """The answer to a body over ``limit`` bytes (Segment answers 400 for an oversized request)."""
    what = "inflates to more than" if inflated else "is over"
    return RequestProblem(400, "request_too_large", f"the request body {what} {limit} bytes, this endpoint's limit")


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a body (invalid JSON, or JSON that is not an object, refuses the request)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestProblem(400, "invalid_json", f"the body is not valid JSON ({exc.msg} at byte {exc.pos})") from None
    if not isinstance(parsed, dict):
        raise RequestProblem(400, "invalid_json", f"the body must be a JSON object, not {type(parsed).__name__}")
    return parsed


def repeated_keys(body: bytes, parsed: dict[str, Any], *, batch: bool) -> dict[int, FieldViolation]:
    """Per event index, the key its JSON repeats (orjson kept only the last value, so the checks saw one meaning).

    A repeat in an event refuses that event alone; one in the request's own fields (``writeKey``, the batch's
    ``context``) refuses the request, since every event shares them.
    """
    if not has_duplicate_keys(body, parsed):
        return {}
    whole = recorded(body)
    items = whole.get("batch") if batch else [whole]
    found: dict[int, FieldViolation] = {}
    for index, item in enumerate(items if isinstance(items, list) else ()):
        repeat = first_duplicate(item)
        if repeat is not None:
            found[index] = duplicate_violation("", repeat)
    if not found:
        where = duplicate_violation("", first_duplicate(whole))
        raise RequestProblem(400, "duplicate_key", f"{where.field or 'the body'}: {where.description}")
    return found


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every event of one request shares: its write key, region and the batch's defaults."""

    write_key: str
    region: Region
    context: dict[str, Any] | None
    integrations: dict[str, Any] | None
    too_deep: bool
    """Whether the body nests past the depth limit somewhere: only then is each event measured for depth."""


def envelope(body: bytes, parsed: dict[str, Any], header_key: str | None, region: Region) -> Envelope:
    """The request's shared part; refuses a request without a write key or with ill-formed batch defaults."""
    write_key = header_key
    if write_key is None:
        body_key = parsed.get("writeKey")
        if isinstance(body_key, str) and body_key:
            write_key = body_key
    if write_key is None:
        raise RequestProblem(
            400, "missing_write_key", "send the write key as Basic auth (`<write key>:`) or as writeKey in the body"
        )
    if len(write_key) > MAX_STRING_CHARS:
        raise RequestProblem(400, "invalid_write_key", f"the write key is over {MAX_STRING_CHARS} characters")
    defaults: list[dict[str, Any] | None] = []
    for name in ("context", "integrations"):
        value = parsed.get(name)
        if value is not None and not isinstance(value, dict):
            raise RequestProblem(400, "invalid_request", f"the batch's {name} must be a JSON object")
        defaults.append(value or None)
    # The whole body nests at most two levels more than its deepest event (the envelope, the batch list).
    return Envelope(write_key, region, defaults[0], defaults[1], json_depth_exceeds(body, MAX_JSON_DEPTH + 2))


def batch_items(parsed: dict[str, Any]) -> list[Any]:
    """The events of a batch body."""
    items = parsed.get("batch")
    if not isinstance(items, list):
        raise RequestProblem(400, "invalid_request", "a batch body needs `batch`, a list of events")
    return items


def _string(item: dict[str, Any], name: str, violations: list[FieldViolation], limit: int) -> str | None:
    value = item.get(name)
    if value is None:
        return None
    if name in _IDS and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        violations.append(FieldViolation(name, f"must be a string, not {type(value).__name__}"))
        return None
    found = check_string(name, value, limit)
    if found is not None:
        violations.append(found)
        return None
    return value or None


def _timestamp(value: Any, violations: list[FieldViolation]) -> tuple[int, int] | None:
    if value is None:
        return None
    stamp = None
    if isinstance(value, str) and len(value) <= 64:
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            stamp = None
    if stamp is None:
        violations.append(FieldViolation("timestamp", "must be an ISO-8601 time, such as 2026-01-31T12:00:00Z"))
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)  # Segment reads a time without an offset as UTC
    since = stamp - _EPOCH
    seconds, millis = since.days * 86400 + since.seconds, since.microseconds // 1000
    found = check_timestamp(seconds, 0)
    if found is not None:
        violations.append(found)
        return None
    return seconds, millis


def _merged(default: dict[str, Any] | None, own: Any, name: str, violations: list[FieldViolation]) -> Any:
    if own is not None and not isinstance(own, dict):
        violations.append(FieldViolation(name, f"must be a JSON object, not {type(own).__name__}"))
        return None
    if default is None:
        return own
    return default if own is None else {**default, **own}


def to_call(
    item: Any, call_type: CallType | None, shared: Envelope, received_at: float, repeat: FieldViolation | None = None
) -> Call:
    """One event as a Call (fields in Segment's order); InvalidEvent names every problem in JSON names.

    ``call_type`` is the endpoint's; None (a batch) reads the event's own ``type``. ``repeat`` is a key the event's
    JSON text repeats (:func:`repeated_keys`), refused with the event's other problems.
    """
    if not isinstance(item, dict):
        raise InvalidEvent.single("event", f"must be a JSON object, not {type(item).__name__}")
    violations: list[FieldViolation] = []
    if call_type is None:
        kind = item.get("type")
        if kind not in _PATHS or _PATHS[kind] is None:
            shown = kind if isinstance(kind, str) and len(kind) < 40 else type(kind).__name__
            raise InvalidEvent.single("type", f"must be one of {', '.join(k.value for k in CallType)}, not {shown}")
        call_type = _PATHS[kind]
        assert call_type is not None
    if shared.too_deep and json_depth_exceeds(orjson.dumps(item), MAX_JSON_DEPTH):
        raise InvalidEvent.single("event", f"nests objects and arrays deeper than {MAX_JSON_DEPTH} levels")
    if repeat is not None:
        violations.append(repeat)
    fields: dict[str, Any] = {}
    parsed: dict[str, dict[str, Any]] = {}
    get = item.get
    for name in _STRINGS[call_type]:
        value = get(name)
        if type(value) is str and len(value) <= MAX_STRING_CHARS:  # the common case, settled without a call
            if value:
                fields[name] = value
        elif value is not None and (value := _string(item, name, violations, MAX_STRING_CHARS)) is not None:
            fields[name] = value
    for name in _OBJECTS[call_type]:
        value = get(name)
        if type(value) is dict:
            fields[name] = parsed[name] = value
        elif value is not None:
            _merged(None, value, name, violations)  # not an object: the violation
    for name, default in (("context", shared.context), ("integrations", shared.integrations)):
        value = _merged(default, get(name), name, violations)
        if value is not None:
            fields[name] = parsed[name] = value
    if not _KNOWN.issuperset(item):  # fields Segment has and the sidecar does not read, kept in the caller's order
        for name, value in item.items():
            if name not in _KNOWN:
                fields[name] = value
    message_id = _string(item, "messageId", violations, SEGMENT_MAX_MESSAGE_ID_CHARS)
    if message_id is not None:
        fields["messageId"] = message_id
    stamp = _timestamp(item.get("timestamp"), violations)
    if stamp is not None:
        fields["timestamp"] = stamp
    if violations:
        raise InvalidEvent("; ".join(f"{v.field}: {v.description}" for v in violations), tuple(violations))
    # A library sends the same context with every event: its text is the key the enricher remembers the enriched
    # context by, as it does for the gRPC edge's context_json bytes.
    context = parsed.get("context")
    context_json = orjson.dumps(context) if context is not None else b""
    return Call(call_type, shared.write_key, shared.region, fields, parsed, received_at, context_json)


def json_field(field: str) -> str:
    """A validator's field path in Segment's JSON names (``user_id`` -> ``userId``, ``traits_json`` -> ``traits``)."""
    head, dot, rest = field.partition(".")
    return PROTO_TO_JSON.get(head, head) + dot + rest
