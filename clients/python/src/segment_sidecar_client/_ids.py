"""Message ids: UUIDv7 (RFC 9562), made cheaply in pure Python.

An id is ``tttttttt-tttt-7rrr-Vrrr-rrrrrrrrrrrr``: 48 bits of Unix milliseconds (``t``), the version ``7``, 12
random bits, the variant ``V`` (``8``, ``9``, ``a`` or ``b``: two fixed bits and two random ones) and 60 more random
bits; 74 random bits in all. Ids are unique across processes and restarts, sort by the millisecond they were made in
(not within it), and parse as UUIDs everywhere; the sidecar makes the same kind for events that arrive without one.

Why not ``str(uuid.uuid4())``: it costs several microseconds (a ``UUID`` object, a system call for 16 random bytes,
formatting), which was the largest part of the client's CPU per queued event. Here the random part of 256 ids comes
from one ``os.urandom`` call and is formatted in one list comprehension; an id is then a clock read and a string
concatenation, with the formatted millisecond cached.

After ``fork`` the child throws away the random parts it inherited, so that parent and child never hand out the
same ones (an id made twice would be de-duplicated by Segment: one event lost).
"""

from __future__ import annotations

import os
import time

_BATCH = 256
"""Random parts made per ``os.urandom`` call."""
_VARIANT = {f"{n:x}": "89ab"[n & 3] for n in range(16)}
"""A random hex digit to the variant digit with the same two low bits (RFC 9562 variant ``10``)."""


def _random_parts(count: int) -> list[str]:
    """``count`` random tails ``rrr-Vrrr-rrrrrrrrrrrr`` (19 hex digits from 10 random bytes each)."""
    digits = os.urandom(count * 10).hex()
    variant = _VARIANT
    return [
        f"{digits[i : i + 3]}-{variant[digits[i + 3]]}{digits[i + 4 : i + 7]}-{digits[i + 7 : i + 19]}"
        for i in range(0, count * 20, 20)
    ]


class MessageIds:
    """A source of UUIDv7 strings; thread-safe (each random part is popped once), fork-safe.

    Calling the instance returns a new id. One instance per process is enough: :func:`new_message_id` uses it.
    """

    __slots__ = ("_clock", "_parts")

    def __init__(self) -> None:
        self._parts: list[str] = []
        # (millisecond, its formatted prefix) as one value, so that a thread never pairs one with the other's.
        self._clock: tuple[int, str] = (-1, "")

    def __call__(self) -> str:
        """A new id."""
        now = time.time_ns() // 1_000_000
        clock = self._clock
        if clock[0] != now:
            digits = f"{now:012x}"
            clock = self._clock = (now, f"{digits[:8]}-{digits[8:]}-7")
        try:
            return clock[1] + self._parts.pop()
        except IndexError:
            self._parts = parts = _random_parts(_BATCH)
            return clock[1] + parts.pop()

    def forget(self) -> None:
        """Drop the random parts made so far (a forked child must not reuse its parent's)."""
        self._parts = []


message_ids = MessageIds()
"""The process's source of message ids."""
os.register_at_fork(after_in_child=message_ids.forget)


def new_message_id() -> str:
    """A fresh message id (a UUIDv7), made on the client so that a retried call keeps it."""
    return message_ids()
