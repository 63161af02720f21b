"""Message ids: UUIDv7 (RFC 9562), made cheaply in pure Python.

An id is ``tttttttt-tttt-7aaa-Vbbb-bbbbbbbbbbbb``: 48 bits of Unix milliseconds (``t``), the version ``7``, 12 bits
drawn once per millisecond from ``random`` (``a``), then the variant ``V`` (``8``, ``9``, ``a`` or ``b``: two fixed
bits) and 62 random bits from ``os.urandom`` per id (``b``). Ids are unique across processes and restarts (the chance
that two of a million ids made in one millisecond collide is about 1e-7), sort by the millisecond they were made in
(not within it), and parse as UUIDs everywhere; the sidecar makes the same kind for events that arrive without one.

Why not ``str(uuid.uuid4())``: it costs several microseconds (a ``UUID`` object, a system call for 16 random bytes,
formatting), which was the largest part of the client's CPU per queued event. Here the random parts of 256 ids come
from one ``os.urandom`` call, their variant bits set in one integer operation and each formatted by ``bytes.hex``
(which places the dash); an id is then a clock read and a string concatenation, with the millisecond's prefix cached.

After ``fork`` the child throws away the random parts it inherited, so that parent and child never hand out the
same ones (an id made twice would be de-duplicated by Segment: one event lost).
"""

from __future__ import annotations

import os
import random
import time

_BATCH = 256
"""Random parts made per ``os.urandom`` call."""
_KEEP = int.from_bytes(bytes.fromhex("3fffffffffffffff") * _BATCH, "big")
_VARIANT = int.from_bytes(bytes.fromhex("8000000000000000") * _BATCH, "big")
"""Per 8 random bytes: clear the top two bits, then set them to ``10`` (RFC 9562's variant)."""


def _random_parts(count: int = _BATCH) -> list[str]:
    """``count`` random tails ``Vbbb-bbbbbbbbbbbb`` (8 random bytes each, the variant bits set)."""
    size = 8 * count
    raw = (int.from_bytes(os.urandom(size), "big") & _KEEP | _VARIANT).to_bytes(size, "big")
    return [raw[i : i + 8].hex("-", 6) for i in range(0, size, 8)]


class MessageIds:
    """A source of UUIDv7 strings; thread-safe (each random part is popped once), fork-safe.

    Calling the instance returns a new id. One instance per process is enough: :func:`new_message_id` uses it.
    """

    __slots__ = ("_clock", "_parts")

    def __init__(self) -> None:
        self._parts: list[str] = []
        # (millisecond, its prefix) as one value, so that a thread never pairs one millisecond with another's prefix.
        self._clock: tuple[int, str] = (-1, "")

    def __call__(self) -> str:
        """A new id."""
        now = time.time_ns() // 1_000_000
        clock = self._clock
        if clock[0] != now:
            digits = f"{now:012x}"
            random_a = random.getrandbits(12)  # no system call per millisecond; re-seeded after fork
            clock = self._clock = (now, f"{digits[:8]}-{digits[8:]}-7{random_a:03x}-")
        try:
            return clock[1] + self._parts.pop()
        except IndexError:
            self._parts = parts = _random_parts()
            return clock[1] + parts.pop()

    def forget(self) -> None:
        """Drop the random parts and the prefix made so far (a forked child must not reuse its parent's)."""
        self._parts = []
        self._clock = (-1, "")


message_ids = MessageIds()
"""The process's source of message ids."""
os.register_at_fork(after_in_child=message_ids.forget)


def new_message_id() -> str:
    """A fresh message id (a UUIDv7), made on the client so that a retried call keeps it."""
    return message_ids()
