"""The raw-input limits: lengths, JSON bytes and depth, timestamps, and the Spec name check's cost on huge names."""

from __future__ import annotations

import random
import string
import time
import tracemalloc
from pathlib import Path

import orjson
import pytest

from sidecar.model import CallType
from sidecar.validate.limits import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_STRING_CHARS,
    MAX_STRUCT_BYTES,
    MAX_TIMESTAMP_SECONDS,
    check_json_bytes,
    check_string,
    check_timestamp,
    json_depth_exceeds,
)
from sidecar.validate.spec import SpecChecker
from sidecar.validate.spec.checker import MAX_CACHED_NAME_CHARS


def nested(depth: int, opener: bytes = b'{"a":', closer: bytes = b"}") -> bytes:
    """A JSON object nesting ``depth`` levels."""
    return opener * (depth - 1) + b'{"a":1}' + closer * (depth - 1)


def test_depth_at_the_limit_passes_and_one_more_fails() -> None:
    """64 nested objects pass; 65 fail; arrays count like objects."""
    assert not json_depth_exceeds(nested(MAX_JSON_DEPTH))
    assert json_depth_exceeds(nested(MAX_JSON_DEPTH + 1))
    assert json_depth_exceeds(b"[" * 1000 + b"]" * 1000)


def test_brackets_inside_strings_do_not_nest() -> None:
    """Brackets in string values, escaped quotes included, are not counted as nesting."""
    text = b'{"a":"' + b"[{" * 5000 + b'\\"' + b"{" * 100 + b'"}'
    assert not json_depth_exceeds(text)


def test_many_siblings_are_not_deep() -> None:
    """Thousands of flat objects side by side are shallow."""
    assert not json_depth_exceeds(b'{"a":[' + b",".join([b'{"b":1}'] * 3000) + b"]}")


def test_a_depth_scan_of_the_largest_field_is_cheap() -> None:
    """The worst case the byte limit lets through (32 KiB of brackets) is scanned in milliseconds."""
    text = b"[" * (MAX_JSON_BYTES // 2) + b"]" * (MAX_JSON_BYTES // 2)
    started = time.perf_counter()
    assert json_depth_exceeds(text)
    assert not json_depth_exceeds(b"[]" * (MAX_JSON_BYTES // 2))
    assert time.perf_counter() - started < 0.05


def test_json_bytes_over_the_event_limit_are_refused_by_size() -> None:
    """A 12 MiB field is refused by its length: no scan, no parse."""
    huge = b'{"a":"' + b"x" * (12 * 2**20) + b'"}'
    started = time.perf_counter()
    violation = check_json_bytes("properties_json", huge)
    assert time.perf_counter() - started < 0.01
    assert violation is not None and violation.field == "properties_json"
    assert check_json_bytes("properties_json", b'{"a":1}') is None


def test_string_lengths() -> None:
    """A string of the limit passes; one character more is refused, naming the field."""
    assert check_string("event", "x" * MAX_STRING_CHARS) is None
    violation = check_string("event", "x" * (MAX_STRING_CHARS + 1))
    assert violation is not None and violation.field == "event"


@pytest.mark.parametrize(
    ("seconds", "nanos", "ok"),
    [
        (0, 0, True),
        (1_700_000_000, 999_999_999, True),
        (MAX_TIMESTAMP_SECONDS, 0, True),
        (MAX_TIMESTAMP_SECONDS + 1, 0, False),
        (10**17, 0, False),
        (-62_135_596_800, 0, False),  # year 1
        (-1, 0, False),
        (1_700_000_000, -1, False),
        (1_700_000_000, 1_000_000_000, False),
    ],
)
def test_timestamp_range(seconds: int, nanos: int, ok: bool) -> None:
    """Timestamps from 1970 to 9999 with nanos in [0, 1e9) pass; anything else is refused on ``timestamp``."""
    violation = check_timestamp(seconds, nanos)
    assert (violation is None) is ok
    if violation is not None:
        assert violation.field == "timestamp"


def unknown_word(length: int) -> str:
    """A word of ``length`` letters none of whose one-letter deletions coincide (``xxx...`` would collapse to two)."""
    return (string.ascii_lowercase * (length // 26 + 1))[:length]


@pytest.mark.parametrize("length", [30_000, 45_000])
def test_a_huge_unknown_word_is_classified_in_milliseconds_with_bounded_memory(length: int) -> None:
    """The typo check no longer expands a long word into its one-edit forms (13.2: 1.2 s and 904 MiB at 30,000)."""
    checker = SpecChecker("strict")
    name = "Order " + unknown_word(length)
    tracemalloc.start()
    try:
        started = time.perf_counter()
        findings = checker.check(CallType.TRACK, name, None)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert findings == []
    assert elapsed < 0.1, f"{elapsed:.3f} s"
    assert peak < 2 * 2**20, f"peak {peak} bytes"


def test_the_name_cache_keeps_only_short_names() -> None:
    """Long names are classified each time and never remembered, so the cache's memory is bounded."""
    checker = SpecChecker("strict")
    for index in range(40):
        checker.check(CallType.TRACK, f"{index} " + "y" * (MAX_CACHED_NAME_CHARS + 10), None)
    checker.check(CallType.TRACK, "Ordr Completed", None)
    info = checker._name_cache.cache_info()  # type: ignore[attr-defined]
    assert info.currsize == 1


def test_the_readme_lists_every_limit() -> None:
    """Each limit appears in the README's Limits table with its value."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    table = readme.split("**Limits**")[1].split("A rejected call")[0]
    for text in (
        f"{MAX_STRING_CHARS:,} characters",
        "99 characters",
        f"{MAX_JSON_BYTES:,} bytes",
        f"{MAX_JSON_DEPTH} objects and arrays deep",
        f"{MAX_STRUCT_BYTES:,} bytes encoded",
        "NaN or Infinity",
        "1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z",
        "32 KB",
        "10,000 events and 16 MiB",
    ):
        assert text in table, text


def _depth(value: object) -> int:
    """Nesting depth of parsed JSON: the reference the text scan must agree with."""
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _random_json(rng: random.Random, depth: int) -> object:
    """A random JSON value nesting up to ``depth`` levels, its strings full of brackets, quotes and backslashes."""
    kind = rng.randrange(4) if depth else 3
    if kind == 0:
        return {rng.choice(["a", "[", '"{', "}\\"]) + str(i): _random_json(rng, depth - 1) for i in range(3)}
    if kind == 1:
        return [_random_json(rng, depth - 1) for _ in range(rng.randrange(4))]
    if kind == 2:
        return rng.randrange(100)
    return "".join(rng.choice(["[", "]", "{", "}", '"', "x", " "] + (["\\\\"] * rng.randrange(2))) for _ in range(6))


def test_the_depth_scan_agrees_with_the_parsed_depth() -> None:
    """On random JSON whose strings hold brackets, quotes and (in some) backslashes, the scan of the text says
    "deeper than d" exactly when the parsed value is, at every d: the quick path for text without backslashes and
    the tokenizer's path agree with the parser."""
    rng = random.Random(7)
    for _ in range(400):
        value = {"batch": [_random_json(rng, rng.randrange(1, 9)) for _ in range(3)]}
        text = orjson.dumps(value)
        for limit in range(1, 12):
            assert json_depth_exceeds(text, limit) == (_depth(value) > limit), (text, limit)
