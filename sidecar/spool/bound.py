"""The spool's bound: what a disk spool occupies on disk, or the payload bytes a memory spool holds, against
``SIDECAR_SPOOL_MAX_BYTES``.

A disk spool counts its files as measured by the store (after removals, and after commits every 50 ms or every time
near the bound), plus estimates of what was committed since the last measurement and of appends not yet committed; an
append past the bound is refused with :class:`~sidecar.errors.CapacityExhausted` (RESOURCE_EXHAUSTED with a retry
delay).
"""

from __future__ import annotations

import time
from collections.abc import Container, Sequence

from sidecar.errors import CapacityExhausted
from sidecar.model import Event, ShardKey

FULL_RETRY_AFTER = 1.0
"""Seconds a caller is told to wait when the spool is full; delivery frees space continuously."""

ROW_OVERHEAD_BYTES = 160
"""What a disk spool counts per appended event beyond its payload until the disk is measured again: its row (seq, key
id, message id up to 99 bytes, accepted_at, record header), its index entry and page slack. The whole estimate counts
twice: a commit's pages go to the WAL first and into the database at the next checkpoint."""

MEASURE_INTERVAL = 0.05
"""Seconds between measurements of the disk after commits (a removal or a commit near the bound always measures)."""

MEASURE_ALWAYS_ABOVE = 0.8
"""Share of the bound past which every commit measures the disk."""


class Bound:
    """The accounting of one spool against its bound (on the event loop only)."""

    def __init__(self, max_bytes: int, on_disk: bool) -> None:
        self.max_bytes = max_bytes
        self._on_disk = on_disk
        # Measured bytes, plus estimates of what was committed since the last measurement and of appends not yet
        # committed.
        self._used = 0
        self._unmeasured = 0
        self._reserved = 0
        self._measured_at = 0.0

    @property
    def disk_bytes(self) -> int:
        """What a disk spool occupies on disk, as last measured plus estimates of commits since (0 for memory)."""
        return self._used + self._unmeasured

    def opened(self, used: int) -> None:
        """The store opened and measured ``used`` bytes on disk."""
        self._used = used
        self._unmeasured = self._reserved = 0
        self._measured_at = time.monotonic()

    def reserve(self, events: Sequence[Event], size: int, pending_bytes: int, known: Container[ShardKey]) -> int:
        """Admit an append of events with ``size`` payload bytes, or raise CapacityExhausted; return the disk bytes
        reserved for it until its commit (0 for memory). ``known``: keys the store holds already."""
        if not self._on_disk:
            if pending_bytes + size > self.max_bytes:
                raise CapacityExhausted(
                    f"the spool holds {pending_bytes} bytes of undelivered events, its limit is "
                    f"{self.max_bytes} (SIDECAR_SPOOL_MAX_BYTES); retry shortly with the same message ids",
                    FULL_RETRY_AFTER,
                )
            return 0
        estimate = _estimate(events, size, known)
        used = self._used + self._unmeasured + self._reserved
        if used + estimate > self.max_bytes:
            raise CapacityExhausted(
                f"the spool uses {used} bytes on disk (undelivered events, dead letters, indexes and log), its "
                f"limit is {self.max_bytes} (SIDECAR_SPOOL_MAX_BYTES); retry shortly with the same message ids",
                FULL_RETRY_AFTER,
            )
        self._reserved += estimate
        return estimate

    def committed(self, estimate: int) -> None:
        """A commit reserved ``estimate`` bytes succeeded: they count as used until the next measurement."""
        self._reserved -= estimate
        self._unmeasured += estimate

    def released(self, estimate: int) -> None:
        """A commit reserved ``estimate`` bytes failed."""
        self._reserved -= estimate

    def should_measure(self) -> bool:
        """Whether the next commit measures the disk: every 50 ms, and every time near the bound."""
        if not self._on_disk:
            return False
        now_ = time.monotonic()
        used = self._used + self._unmeasured + self._reserved
        if now_ - self._measured_at >= MEASURE_INTERVAL or used > self.max_bytes * MEASURE_ALWAYS_ABOVE:
            self._measured_at = now_
            return True
        return False

    def measured(self, used: int | None) -> None:
        """A store job measured the disk after its work (applied in job order: every earlier commit is in it)."""
        if used is not None:
            self._used = used
            self._unmeasured = 0


def _estimate(events: Sequence[Event], size: int, known: Container[ShardKey]) -> int:
    """Disk bytes these events will take until measured: payloads, rows and any key not stored yet."""
    estimate = size + ROW_OVERHEAD_BYTES * len(events)
    if len(events) == 1:
        event = events[0]
        if (event.write_key, event.region) not in known:
            estimate += len(event.write_key)
        return 2 * estimate
    for key in {(event.write_key, event.region) for event in events}:
        if key not in known:
            estimate += len(key[0])
    return 2 * estimate
