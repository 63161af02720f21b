"""Duplicate keys in JSON text are found at any depth, however the text is written, and nothing else is."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.validate.json_keys import check_duplicate_keys, duplicate_key_path, has_duplicate_keys


def truth(raw: bytes) -> bool:
    """Whether any object of ``raw`` repeats a key, by the standard library's own pairs."""
    found = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        keys = [key for key, _ in pairs]
        found = found or len(keys) != len(set(keys))
        return dict(pairs)

    json.loads(raw, object_pairs_hook=hook)
    return found


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"revenue":"ten","revenue":10}', "revenue"),
        (b'{"integration":{"name":"other"},"library":{},"integration":{"name":"ours"}}', "integration"),
        (b'{"products":[{"sku":"a"},{"sku":"b","price":1,"sku":"c"}]}', "products[1].sku"),
        (b'{"a":{"b":{"c":1,"c":2}}}', "a.b.c"),
        (b'{"a":1,"\\u0061":2}', "a"),
        (b'{"a":1,"a":"\\u003a"}', "a"),
        (b'{"url":"https://x","url":"https://y"}', "url"),
        (b'{ "k" : 1 , "k" : 1 }', "k"),
        (b'{"k:1":1,"k:1":1}', "k:1"),
    ],
)
def test_duplicates_are_found_with_their_path(raw: bytes, path: str) -> None:
    """A repeated key is found (escaped spellings, escaped colons, colons in keys, whitespace) and its path named."""
    parsed = orjson.loads(raw)
    assert has_duplicate_keys(raw, parsed)
    found = duplicate_key_path(raw)
    assert found is not None
    assert found[0] == path
    violation = check_duplicate_keys("properties_json", raw, parsed)
    assert violation is not None
    assert violation.field == f"properties_json.{path}"
    assert f'"{found[1]}"' in violation.description


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,"b":2}',
        b'{"url":"https://example.com:8443/a?b=c:d","at":"12:00:00"}',
        b'{"a":{"a":1},"b":{"a":2},"c":[{"a":1},{"a":2}]}',
        b'{"colon":"\\u003a","k:ey":":"}',
        b'{"big":123456789012345678901234567890,"n":18446744073709551615}',
        b'{"s":"\\"a\\":1,\\"a\\":2"}',
        b"{}",
    ],
)
def test_objects_without_a_repeat_pass(raw: bytes) -> None:
    """Colons in strings and keys, escaped colons, the same key in different objects, huge numbers: no finding."""
    assert not has_duplicate_keys(raw, orjson.loads(raw))
    assert check_duplicate_keys("context_json", raw, orjson.loads(raw)) is None


def test_a_list_at_the_top_is_checked_too() -> None:
    """A list at the top is checked like an object, with an index in the path; an empty field name gives the bare
    path, as an HTTP body's refusal wants it."""
    raw = b'[{"a":1},{"b":1,"b":2}]'
    violation = check_duplicate_keys("batch", raw, orjson.loads(raw))
    assert violation is not None
    assert violation.field == "batch[1].b"
    body = b'{"batch":[{"properties":{"revenue":"ten","revenue":10}}]}'
    whole = check_duplicate_keys("", body, orjson.loads(body))
    assert whole is not None
    assert whole.field == "batch[0].properties.revenue"


_keys = st.sampled_from(["a", "b", "k:1", "url", "\u00e9", "c"])
_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from(["x", "a:b", "https://h:1/", ":", "", "\u00e9:"]),
    st.booleans(),
    st.none(),
)


def _text(value: Any, rng: st.DataObject) -> str:
    """JSON text for a value where objects are lists of pairs, so that keys may repeat; colons sometimes escaped."""
    if isinstance(value, tuple):
        return "{" + ",".join(f"{_string(k, rng)}:{_text(v, rng)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_text(v, rng) for v in value) + "]"
    if isinstance(value, str):
        return _string(value, rng)
    return json.dumps(value)


def _string(value: str, rng: st.DataObject) -> str:
    text = json.dumps(value)
    if ":" in value and rng.draw(st.booleans()):
        text = text.replace(":", "\\u003a")
    return text


_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(st.tuples(_keys, inner), max_size=4).map(tuple),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_keys, _values), max_size=5).map(tuple), st.data())
def test_the_count_agrees_with_a_parser_that_keeps_every_pair(pairs: tuple[Any, ...], data: st.DataObject) -> None:
    """On generated objects, some with repeated keys and escaped colons, the check answers what the pairs say."""
    raw = _text(pairs, data).encode()
    assert has_duplicate_keys(raw, orjson.loads(raw)) == truth(raw)
