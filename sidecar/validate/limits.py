"""The size, length, depth and time limits every event meets, checked before any work whose cost grows with it.

Each limit is far beyond what a real event reaches, and each is one named constant here (the README's error table
lists them). The checks are pure functions over the raw values the caller sent, so that a refusal costs about what
reading the request costs: a string's length, a byte count, one scan of at most :data:`MAX_JSON_BYTES` bytes.

=====================  ======================================================================
Limit                  Value
=====================  ======================================================================
strings                write key, user/anonymous/group/previous id, event/page/screen name and
                       category: at most :data:`MAX_STRING_CHARS` characters each
message id             at most ``SEGMENT_MAX_MESSAGE_ID_CHARS`` (99) characters
``*_json`` bytes       at most :data:`MAX_JSON_BYTES` bytes per field (Segment's event limit)
Struct size            at most :data:`MAX_STRUCT_BYTES` encoded bytes per field
JSON depth             at most :data:`MAX_JSON_DEPTH` nested objects and arrays; a Struct deeper than 33
                       levels already fails protobuf's decoder (100 nested messages, 3 per level)
numbers                Struct numbers must be finite (JSON has no NaN or Infinity)
timestamp              :data:`MIN_TIMESTAMP_SECONDS` .. :data:`MAX_TIMESTAMP_SECONDS`
                       (1970-01-01T00:00:00Z .. 9999-12-31T23:59:59Z), nanos in [0, 1e9)
enriched event         at most ``SEGMENT_MAX_EVENT_BYTES`` (32 KiB), checked by the enricher
=====================  ======================================================================
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import accumulate, repeat

from sidecar.config import SEGMENT_MAX_EVENT_BYTES, SEGMENT_MAX_MESSAGE_ID_CHARS
from sidecar.errors import FieldViolation

MAX_STRING_CHARS = 1024
"""Longest write key, id, event name or category: Segment's own ids are 20-40 characters, names a few words."""

MAX_JSON_BYTES = SEGMENT_MAX_EVENT_BYTES
"""Longest ``*_json`` field: a field over it cannot fit in an event Segment accepts, so it is refused unparsed."""

MAX_STRUCT_BYTES = 2 * SEGMENT_MAX_EVENT_BYTES
"""Largest Struct field, encoded. Real events encode at 1.2-1.5x their JSON size, so twice Segment's limit keeps every
event that fits it; the enriched event's 32 KiB decides. Converting one this size costs about 5 ms at most."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays (the top-level object is depth 1); orjson itself writes at most ~254."""

MIN_TIMESTAMP_SECONDS = 0
"""1970-01-01T00:00:00Z: the earliest ``timestamp`` accepted (events happen after the Unix epoch)."""

MAX_TIMESTAMP_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z: the latest ``timestamp`` ISO-8601's four-digit year can write."""

JSON_STRING_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
"""A JSON string (with its escapes) as one token, so that brackets or colons inside strings are not counted. Written
as the "unrolled loop" (no alternation per character), which the regex engine runs without backtracking."""
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NOT_BRACKETS_OR_QUOTES = bytes(b for b in range(256) if b not in b'[]{}"')
_NESTING = [1 if byte in b"[{" else -1 if byte in b"]}" else 0 for byte in range(256)]
"""How much each byte of a brackets-only text changes the depth: +1 for ``[`` and ``{``, -1 for ``]`` and ``}``."""


def check_string(field: str, value: str, limit: int = MAX_STRING_CHARS) -> FieldViolation | None:
    """A violation when ``value`` is longer than ``limit`` characters."""
    if len(value) > limit:
        return FieldViolation(field, f"has {len(value)} characters; the sidecar accepts at most {limit}")
    return None


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``raw`` nests objects and arrays deeper than ``limit``, without parsing it.

    Strings are dropped first (a bracket inside one does not nest), then the depth is the running sum over the
    brackets left. Linear in ``len(raw)``; text that is not JSON gets an answer too, and the parser refuses it
    afterwards.
    """
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False  # the common case: too few brackets to nest that deep
    brackets = _brackets_outside_strings(raw)
    return max(accumulate(map(_NESTING.__getitem__, brackets)), default=0) > limit


def _brackets_outside_strings(raw: bytes) -> bytes:
    """The brackets of ``raw`` that are not inside a JSON string, in order.

    Without a backslash no quote is escaped, so quotes open and close strings in turn. Kept with the brackets only,
    a string with no bracket in it is two adjacent quotes, and ``replace`` (left to right) removes exactly those
    pairs: a string holding a bracket leaves its opening quote behind, and then the tokenizer decides. Every step is
    one C-level pass, where the tokenizer's regex costs a few microseconds per string (a 1,000-event HTTP batch: 9 ms
    against 1).
    """
    if b"\\" not in raw:
        brackets = raw.translate(None, _NOT_BRACKETS_OR_QUOTES).replace(b'""', b"")
        if b'"' not in brackets:
            return brackets
    return JSON_STRING_TOKEN.sub(b"", raw).translate(None, _NOT_BRACKETS)


def check_json_bytes(field: str, raw: bytes) -> FieldViolation | None:
    """A violation when a ``*_json`` field is over :data:`MAX_JSON_BYTES` or nests past :data:`MAX_JSON_DEPTH`."""
    if len(raw) > MAX_JSON_BYTES:
        return FieldViolation(
            field,
            f"has {len(raw)} bytes; an event may hold at most {MAX_JSON_BYTES} bytes (Segment's limit per event)",
        )
    if json_depth_exceeds(raw):
        return FieldViolation(field, f"nests objects and arrays deeper than {MAX_JSON_DEPTH} levels")
    return None


def check_struct_size(field: str, encoded_bytes: int) -> FieldViolation | None:
    """A violation when a Struct field encodes to more than :data:`MAX_STRUCT_BYTES`."""
    if encoded_bytes > MAX_STRUCT_BYTES:
        return FieldViolation(
            field, f"is {encoded_bytes} bytes encoded; the sidecar accepts at most {MAX_STRUCT_BYTES} per Struct"
        )
    return None


def check_timestamp(seconds: int, nanos: int) -> FieldViolation | None:
    """A violation when a timestamp is outside 1970..9999 or its nanos outside [0, 1e9)."""
    if not 0 <= nanos < 1_000_000_000:
        return FieldViolation("timestamp", f"has nanos {nanos}; they must be in [0, 999999999]")
    if not MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS:
        return FieldViolation(
            "timestamp",
            f"has seconds {seconds}; the sidecar accepts 1970-01-01T00:00:00Z ({MIN_TIMESTAMP_SECONDS}) to "
            f"9999-12-31T23:59:59Z ({MAX_TIMESTAMP_SECONDS})",
        )
    return None


_MIN_STRING_LIMIT = min(MAX_STRING_CHARS, SEGMENT_MAX_MESSAGE_ID_CHARS)
"""Strings no longer than this are within every string limit: one ``max`` settles them all."""


def columns_far_inside_limits(strings: Sequence[Sequence[str]], texts: Sequence[Sequence[bytes]]) -> bool:
    """Whether every string (columns of a request field each) and every JSON text is so far inside its limit that
    the exact checks would find nothing: settled a field at a time over many requests, each count one C-level pass.
    False says only that an exact check must decide."""
    if max(max(map(len, column)) for column in strings) > _MIN_STRING_LIMIT:
        return False
    for column in texts:
        if not any(column):
            continue
        if max(map(len, column)) > MAX_JSON_BYTES:
            return False
        # A text with no more brackets than the depth bound cannot nest deeper than it; one with more may still be
        # shallow enough, and the exact check decides that.
        if max(map(bytes.count, column, repeat(b"{"))) + max(map(bytes.count, column, repeat(b"["))) > MAX_JSON_DEPTH:
            return False
    return True


def row_far_inside_limits(strings: Sequence[str], texts: Sequence[bytes]) -> bool:
    """:func:`columns_far_inside_limits` for one request's fields."""
    return max(map(len, strings)) <= _MIN_STRING_LIMIT and not any(
        text and (len(text) > MAX_JSON_BYTES or text.count(b"{") + text.count(b"[") > MAX_JSON_DEPTH) for text in texts
    )
