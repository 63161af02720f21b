r"""Duplicate keys in JSON text: refused, because two parsers can read two different objects from the same bytes.

``{"revenue": "ten", "revenue": 10}`` is ten to a parser that keeps the first value and 10 to one that keeps the last
(orjson, Python's ``json``); RFC 8259 leaves it undefined. The sidecar checks the object it parsed and sends the
caller's bytes unchanged, so a duplicate would let an event pass the checks with one meaning and reach Segment and its
destinations with another. Every intake that parses JSON text calls :func:`check_duplicate_keys` on the text and the
object parsed from it, at any depth.

Cost: orjson keeps the last value silently, so the check compares colon counts instead of parsing again. A colon in
JSON text is a key's separator or part of a string, and a repeated key takes its separator and its first value's
string colons out of the parsed object. The checks run cheapest first and stop at the first that settles it:

1. the colons in the text equal the keys of the top-level object (a flat object with no colon in its strings);
2. the text escapes no colon (no ``\u003a``) and has as many colons as the parsed object written back out by orjson,
   which writes every key's separator and every string colon as one ``:``;
3. the colons left once every string token is cut out (one C-level regex pass, about the cost of a parse) equal the
   keys of every parsed object, counted by one walk.

Only a text that fails all three is parsed again (Python's ``json``, recording duplicates) to name the key's path.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from sidecar.errors import FieldViolation
from sidecar.validate.limits import JSON_STRING_TOKEN


def _keys_in(value: Any) -> int:
    """How many keys the objects of a parsed JSON value hold together (iterative: depth is no risk)."""
    count = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is dict:
            count += len(item)
            children = item.values()
        else:
            children = item
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                pending.append(child)
    return count


def has_duplicate_keys(raw: bytes, parsed: Any) -> bool:
    """Whether the JSON text ``raw``, which parsed to ``parsed``, repeats a key in one of its objects."""
    colons = raw.count(b":")
    if type(parsed) is dict and colons == len(parsed):
        return False
    # orjson writes a colon as itself, never escaped: unless the text escapes one (``\u003a``), the colons of the
    # parsed object written back out are those of the text minus the ones a repeated key took away with it.
    if b"\\" not in raw or b"\\u003" not in raw:  # a one-byte search first: most texts escape nothing
        try:
            if orjson.dumps(parsed).count(b":") == colons:
                return False
        except orjson.JSONEncodeError:
            pass  # a value orjson reads but does not write (an integer beyond 64 bits): count the slow way
    return JSON_STRING_TOKEN.sub(b"", raw).count(b":") != _keys_in(parsed)


class _Recorded(dict[str, Any]):
    """A parsed object that remembers the first key its text repeated."""

    __slots__ = ("duplicate",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.duplicate: str | None = None
        for key, value in pairs:
            if self.duplicate is None and key in self:
                self.duplicate = key
            self[key] = value


def recorded(raw: bytes) -> Any:
    """``raw`` parsed again with Python's ``json``, each object remembering the first key its text repeated.

    Call it only once :func:`has_duplicate_keys` said yes: it costs several times an orjson parse.
    """
    return json.loads(raw, object_pairs_hook=_Recorded)


def first_duplicate(value: Any) -> tuple[str, str] | None:
    """The path of the first repeated key in a value from :func:`recorded` (``products[1].sku``) and the key.

    Objects are searched from the outside in, in the text's order.
    """
    pending: list[tuple[Any, str]] = [(value, "")]
    while pending:
        value, path = pending.pop()
        if isinstance(value, _Recorded) and value.duplicate is not None:
            key = value.duplicate
            return (f"{path}.{key}" if path else key), key
        if isinstance(value, dict):
            pending.extend(reversed([(child, f"{path}.{key}" if path else key) for key, child in value.items()]))
        elif isinstance(value, list):
            pending.extend(reversed([(child, f"{path}[{index}]") for index, child in enumerate(value)]))
    return None


def duplicate_key_path(raw: bytes) -> tuple[str, str] | None:
    """The path of the first repeated key in ``raw`` (``revenue``, ``products[1].sku``) and the key, or None."""
    return first_duplicate(recorded(raw))


def duplicate_violation(field: str, found: tuple[str, str] | None) -> FieldViolation:
    """The violation for a repeated key ``found`` (path, key) inside ``field`` (``""`` for a whole body)."""
    if found is None:  # counts disagree but no repeat found: name the field rather than guess
        return FieldViolation(field, "repeats a key in one of its objects; send each key once per object")
    path, key = found
    return FieldViolation(
        f"{field}{path}" if not field or path.startswith("[") else f"{field}.{path}",
        f'repeats the key "{key}" in one object; send each key once: parsers disagree on which value counts, '
        "so the sidecar cannot check what Segment would read",
    )


def check_duplicate_keys(field: str, raw: bytes, parsed: Any) -> FieldViolation | None:
    """A violation on ``<field>.<path>`` when the JSON text ``raw`` (which parsed to ``parsed``) repeats a key.

    For every intake that parses JSON text: the gRPC ``*_json`` fields (``properties_json.revenue``) and an HTTP body
    (``field=""`` names ``batch[3].properties.revenue``).
    """
    if not has_duplicate_keys(raw, parsed):
        return None
    return duplicate_violation(field, duplicate_key_path(raw))
