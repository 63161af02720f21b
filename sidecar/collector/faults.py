"""What the collector does wrong on purpose, so the sidecar's delivery can be tested against a misbehaving Segment.

A :class:`Faults` object is plain state that a test changes at any moment, in-process (``collector.faults.delay =
2``) or over HTTP (``POST /_collector/faults`` with a JSON object of the fields to change; ``DELETE`` clears them).
The handler consults it once per request, in this order, after reading the body:

1. ``delay``: wait this many seconds before answering anything (a slow server);
2. ``reset_rate``: reset the connection without an answer (the client sees a connection error);
3. ``down``: answer 503 (an outage);
4. ``throttle_next``: answer 429 with ``Retry-After`` and ``X-RateLimit-Reset`` (``retry_after`` seconds), N times;
5. ``error_rate``: answer one of ``error_statuses`` at random;
6. then the normal checks, where ``revoked_write_keys`` answer 401 and a batch holding one of
   ``reject_message_ids`` answers 400 ``invalid_event``.

Faults 1-5 apply to every write key, or only to ``only_write_keys`` when that set is not empty (to show that one
key's outage or throttling leaves the others alone). Random draws come from one generator seeded with ``seed``, so a
single-threaded sequence of requests is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.model import write_key_hash


@dataclass
class Faults:
    """The faults a collector injects; all off by default. Change fields at any time."""

    error_rate: float = 0.0
    """Fraction (0..1) of requests answered with a status drawn from :attr:`error_statuses`."""
    error_statuses: list[int] = field(default_factory=lambda: [500, 503])
    throttle_next: int = 0
    """Answer this many next requests 429; decremented by each one."""
    retry_after: int = 1
    """Seconds sent in ``Retry-After`` and ``X-RateLimit-Reset`` with each 429."""
    reset_rate: float = 0.0
    """Fraction (0..1) of requests whose connection is reset without an answer (recorded with status 0)."""
    delay: float = 0.0
    """Seconds to wait before answering each request."""
    reject_message_ids: set[str] = field(default_factory=set)
    """A batch holding any of these message ids is refused with 400 ``invalid_event``."""
    revoked_write_keys: set[str] = field(default_factory=set)
    """Requests with these write keys are refused with 401, as Segment does for a revoked or wrong-region key."""
    down: bool = False
    """Answer every request 503."""
    only_write_keys: set[str] = field(default_factory=set)
    """When not empty, ``delay``, ``reset_rate``, ``down``, ``throttle_next`` and ``error_rate`` touch only these
    write keys."""
    seed: int | None = 0
    """Seed of the random draws; re-applied by :meth:`reseed` and by every HTTP update that sets it."""
    _random: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.reseed(self.seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random draws from ``seed`` (None: unpredictable)."""
        self.seed = seed
        self._random = random.Random(seed)

    def clear(self) -> None:
        """Turn every fault off and restart the random draws from seed 0."""
        defaults = Faults()
        for name in _FIELDS:
            setattr(self, name, getattr(defaults, name))
        self.reseed(0)

    def applies_to(self, write_key: str | None) -> bool:
        """True when the request-level faults (delay, reset, down, throttle, errors) apply to this key."""
        return not self.only_write_keys or write_key in self.only_write_keys

    def draw_reset(self) -> bool:
        """Decide whether this request's connection is reset."""
        return self.reset_rate > 0 and self._random.random() < self.reset_rate

    def take_throttle(self) -> bool:
        """Decide whether this request is throttled (uses up one of :attr:`throttle_next`)."""
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return True
        return False

    def draw_error(self) -> int | None:
        """The error status this request gets, or None."""
        if self.error_rate > 0 and self.error_statuses and self._random.random() < self.error_rate:
            return self._random.choice(self.error_statuses)
        return None

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a JSON object of changes (the HTTP admin route); raise ``ValueError`` naming every bad field.

        Nothing is changed when any field is bad.
        """
        problems: list[str] = []
        parsed: dict[str, Any] = {}
        for name, value in changes.items():
            kind = _FIELDS.get(name)
            if kind is None:
                problems.append(f"{name}: unknown fault")
                continue
            try:
                parsed[name] = _coerce(kind, value)
            except (TypeError, ValueError) as exc:
                problems.append(f"{name}: {exc}")
        for name in ("error_rate", "reset_rate"):
            if name in parsed and not 0 <= parsed[name] <= 1:
                problems.append(f"{name}: must be between 0 and 1")
        for name in ("delay", "throttle_next", "retry_after"):
            if name in parsed and parsed[name] < 0:
                problems.append(f"{name}: must not be negative")
        if problems:
            raise ValueError("; ".join(problems))
        for name, value in parsed.items():
            if name == "seed":
                self.reseed(value)
            else:
                setattr(self, name, value)

    def describe(self) -> dict[str, Any]:
        """The current faults as JSON, with write keys shown only as short hashes."""
        described: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        described["reject_message_ids"] = sorted(self.reject_message_ids)
        for name in ("revoked_write_keys", "only_write_keys"):
            described[name + "_hashes"] = sorted(write_key_hash(key) for key in described.pop(name))
        return described


# Each settable field and the JSON type it takes.
_FIELDS: dict[str, str] = {
    "error_rate": "float",
    "error_statuses": "int_list",
    "throttle_next": "int",
    "retry_after": "int",
    "reset_rate": "float",
    "delay": "float",
    "reject_message_ids": "str_set",
    "revoked_write_keys": "str_set",
    "down": "bool",
    "only_write_keys": "str_set",
    "seed": "optional_int",
}


def _coerce(kind: str, value: Any) -> Any:
    """Check one JSON value against its field's type; booleans are never taken for numbers."""
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError("expected true or false")
        return value
    if kind in ("int", "optional_int"):
        if value is None and kind == "optional_int":
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("expected an integer")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("expected a number")
        return float(value)
    if kind == "int_list":
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise TypeError("expected a list of integers")
        if not all(100 <= v <= 599 for v in value):
            raise ValueError("expected HTTP statuses")
        return list(value)
    if kind == "str_set":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError("expected a list of strings")
        return set(value)
    raise AssertionError(f"unknown field kind {kind}")
