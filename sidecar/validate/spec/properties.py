"""Property and trait checks: documented keys with the wrong type, and keys that are a documented key misspelt.

A :class:`Schema` is compiled once per Spec event (and once each for identify traits, group traits, page and screen
properties and the reserved properties of every track call). Checking a payload walks its keys once: a key the schema
documents gets a type check; any other key is folded (lower case, no separators) and looked up among the folded
documented keys, which catches ``orderId``, ``order-id`` and ``Order_ID`` for ``order_id``. Folding is memoised,
since partners send the same few keys over and over.

Every finding here is a WARNING: the Spec's own types are loose, so a type problem never rejects a call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from sidecar.validate.spec.findings import Code, Finding, Severity

Predicate = Callable[[Any], bool]

_ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|z|[+-]\d{2}(?::?\d{2})?)?)?")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_MAX_ARRAY_ITEMS_CHECKED = 100
"""Bounds the cost of a huge ``products`` array; the first hundred elements show any systematic mistake."""


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _is_array(value: Any) -> bool:
    return isinstance(value, list | tuple)


def is_object(value: Any) -> bool:
    """True for a JSON object (a mapping)."""
    # dict first: an ABC isinstance check costs a microsecond, a concrete one a few nanoseconds.
    return type(value) is dict or isinstance(value, Mapping)


def _is_date(value: Any) -> bool:
    return isinstance(value, str) and _ISO_8601.fullmatch(value) is not None


def _is_any(value: Any) -> bool:
    return True


_TYPES: dict[str, tuple[Predicate, str, tuple[type, ...]]] = {
    "string": (_is_string, "a string", (str,)),
    "number": (_is_number, "a number", (int, float)),
    "integer": (_is_integer, "an integer", (int,)),
    "boolean": (_is_boolean, "a boolean", (bool,)),
    "array": (_is_array, "an array", (list, tuple)),
    "object": (is_object, "an object", (dict,)),
    "date": (_is_date, 'an ISO-8601 date string (e.g. "2024-05-01T12:00:00Z")', ()),
    "any": (_is_any, "any value", ()),
}
"""Per type: the full predicate, how to say it, and the concrete Python types that pass without calling it."""


@dataclass(frozen=True, slots=True)
class Rule:
    """The expected type of one key: a predicate and how to say it to a person.

    ``fast`` holds the concrete types that certainly pass (``type(value) in fast`` is the hot path); anything else
    goes through ``check``, which is the whole truth (``bool`` is not a number; a ``date`` needs the regex).
    """

    check: Predicate
    expected: str
    fast: frozenset[type]
    items: Fields | None = None
    """For an array of objects (``products``): the documented keys of each element."""
    fields: Fields | None = None
    """For an object (``campaign``, ``address``): its documented keys."""

    def accepts(self, value: Any) -> bool:
        """True when ``value`` has the expected type."""
        return type(value) in self.fast or self.check(value)


def compile_type(spec: str) -> Rule:
    """Turn a catalog type (``"number"``, ``"string|object"``) into a :class:`Rule`."""
    parts = [_TYPES[part.strip()] for part in spec.split("|")]
    fast = frozenset(t for _, _, types in parts for t in types)
    if len(parts) == 1:
        return Rule(parts[0][0], parts[0][1], fast)
    predicates = tuple(p for p, _, _ in parts)
    return Rule(lambda value: any(p(value) for p in predicates), " or ".join(text for _, text, _ in parts), fast)


def describe(value: Any) -> str:
    """A short description of a value's JSON type, for messages."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 30 else value[:27] + "..."
        return f'the string "{shown}"'
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


@lru_cache(maxsize=8192)
def fold(key: str) -> str:
    """A key without case or separators: ``orderId``, ``order-id`` and ``ORDER_ID`` all fold to ``orderid``."""
    return "".join(ch for ch in key.lower() if ch.isalnum())


def snake_case(key: str) -> str:
    """``firstName`` -> ``first_name`` (the Spec accepts both forms for reserved traits)."""
    return _CAMEL_BOUNDARY.sub("_", key).lower()


_PLAIN_KEYS_REMEMBERED = 1024
"""Per set of documented keys, how many unrelated keys to remember as plain (skipping the fold on the next event)."""


class Fields:
    """The documented keys of one object, with their folded spellings for near-miss lookups."""

    __slots__ = ("folded", "plain", "rules")

    def __init__(self, rules: dict[str, Rule], folded: dict[str, str] | None = None) -> None:
        """``rules`` maps every accepted key to its rule; ``folded`` maps folded keys to the documented spelling."""
        self.rules = rules
        self.folded = folded if folded is not None else {fold(key): key for key in rules}
        self.plain: set[str] = set()

    def documented(self, key: Any) -> str | None:
        """The documented key that ``key`` misspells, or None when it is a key of its own."""
        if key in self.plain or not isinstance(key, str):
            return None
        documented = self.folded.get(fold(key))
        if documented is None or documented == key:
            if len(self.plain) < _PLAIN_KEYS_REMEMBERED:
                self.plain.add(key)
            return None
        return documented


def _compile_fields(types: Mapping[str, str], accept_snake_case: bool) -> Fields:
    top: dict[str, Rule] = {}
    nested: dict[str, dict[str, Rule]] = {}
    arrays: set[str] = set()
    for key, spec in types.items():
        if "[]." in key:
            parent, child = key.split("[].", 1)
            arrays.add(parent)
            nested.setdefault(parent, {})[child] = compile_type(spec)
        elif "." in key:
            parent, child = key.split(".", 1)
            nested.setdefault(parent, {})[child] = compile_type(spec)
        else:
            top[key] = compile_type(spec)
    for parent, children in nested.items():
        rule = top.get(parent) or compile_type("array" if parent in arrays else "object")
        if parent in arrays:
            top[parent] = replace(rule, items=Fields(children))
        else:
            top[parent] = replace(rule, fields=Fields(children))
    folded = {fold(key): key for key in top}
    if accept_snake_case:
        for key, rule in list(top.items()):
            top.setdefault(snake_case(key), rule)
    return Fields(top, folded)


class Schema:
    """The documented keys of one payload (an event's properties, or a call's traits) and their types."""

    __slots__ = ("_fields", "_name_code", "_owner", "_type_code", "_word")

    def __init__(
        self,
        types: Mapping[str, str],
        *,
        owner: str | None,
        traits: bool = False,
        accept_snake_case: bool = False,
    ) -> None:
        """Compile ``types`` (catalog keys, nested ones included); ``owner`` names the event in messages."""
        self._owner = owner
        self._word = "trait" if traits else "property"
        self._type_code = Code.TRAIT_TYPE if traits else Code.PROPERTY_TYPE
        self._name_code = Code.TRAIT_NAME if traits else Code.PROPERTY_NAME
        self._fields = _compile_fields(types, accept_snake_case)

    @property
    def keys(self) -> frozenset[str]:
        """The documented top-level keys (and accepted spellings)."""
        return frozenset(self._fields.rules)

    def merged(self, other: Schema) -> Schema:
        """This schema with ``other``'s top-level keys added where this one has none (event + reserved props)."""
        merged = object.__new__(Schema)
        merged._owner = self._owner
        merged._word = self._word
        merged._type_code = self._type_code
        merged._name_code = self._name_code
        merged._fields = Fields(
            {**other._fields.rules, **self._fields.rules}, {**other._fields.folded, **self._fields.folded}
        )
        return merged

    def check(self, payload: Mapping[str, Any], prefix: str, findings: list[Finding]) -> None:
        """Append a WARNING to ``findings`` for every misspelt or mistyped documented key of ``payload``."""
        self._check_fields(self._fields, payload, prefix, findings)

    def _check_fields(self, fields: Fields, value: Mapping[str, Any], path: str, findings: list[Finding]) -> None:
        rules = fields.rules
        plain = fields.plain
        for key, item in value.items():
            rule = rules.get(key)
            target = key
            if rule is None:
                if key in plain:  # a key of the partner's own, seen before: skip the call into documented()
                    continue
                documented = fields.documented(key)
                if documented is None:
                    continue
                findings.append(self._name_finding(path, key, documented))
                target, rule = documented, rules[documented]
            if item is None:
                continue
            if type(item) not in rule.fast and not rule.check(item):
                findings.append(self._type_finding(f"{path}.{key}", target, rule, item))
            elif rule.items is not None:
                self._check_items(rule.items, item, f"{path}.{key}", target, findings)
            elif rule.fields is not None:
                self._check_fields(rule.fields, item, f"{path}.{key}", findings)

    def _check_items(self, fields: Fields, items: Iterable[Any], path: str, key: str, findings: list[Finding]) -> None:
        for index, item in enumerate(items):
            if index >= _MAX_ARRAY_ITEMS_CHECKED:
                break
            if type(item) is dict:
                # Checked into a scratch list so that the element's path is only formatted when something is wrong.
                before = len(findings)
                self._check_fields(fields, item, "", findings)
                for position in range(before, len(findings)):
                    found = findings[position]
                    findings[position] = replace(found, field=f"{path}[{index}]{found.field}")
            elif is_object(item):
                self._check_fields(fields, item, f"{path}[{index}]", findings)
            else:
                findings.append(
                    Finding(
                        code=self._type_code,
                        field=f"{path}[{index}]",
                        message=f'each element of {self._word} "{key}"{self._of()} should be an object, '
                        f"got {describe(item)} at index {index}",
                        severity=Severity.WARNING,
                    )
                )

    def _of(self) -> str:
        return f' of "{self._owner}"' if self._owner else ""

    def _name_finding(self, prefix: str, key: str, documented: str) -> Finding:
        return Finding(
            code=self._name_code,
            field=f"{prefix}.{key}",
            message=f'{self._word} "{key}" looks like the Spec {self._word} "{documented}"{self._of()}; '
            f'send "{documented}" so destinations map it',
            severity=Severity.WARNING,
            suggestion=documented,
        )

    def _type_finding(self, path: str, key: str, rule: Rule, value: Any) -> Finding:
        return Finding(
            code=self._type_code,
            field=path,
            message=f'{self._word} "{key}"{self._of()} should be {rule.expected} per the Spec, got {describe(value)}',
            severity=Severity.WARNING,
        )
