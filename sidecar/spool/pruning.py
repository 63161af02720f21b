"""The dead letters' bounds: at most ``dead_letter_max_bytes`` and ``dead_letter_max_age`` seconds old. Beyond either,
the oldest are pruned (by the dead-letter job that overflows them, and by the spool's pruner every ``interval``),
logged (``dead_letters_pruned``) and counted for the metrics."""

from __future__ import annotations

import structlog

from sidecar.spool.store import Pruned

DEFAULT_DEAD_LETTER_MAX_BYTES = 256 * 2**20
DEFAULT_DEAD_LETTER_MAX_AGE = 7 * 86400.0
PRUNE_INTERVAL = 10.0
"""Seconds between prunings of dead letters past their age (those beyond their bound go as soon as they arrive)."""

log = structlog.get_logger("sidecar.spool")


class DeadLetterBounds:
    """The bounds, and what pruning removed since start (on the event loop only)."""

    def __init__(self, max_bytes: int, max_age: float, interval: float) -> None:
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.interval = interval
        self.pruned = 0
        """Dead letters pruned since start (past their age or beyond their bound)."""
        self.pruned_bytes = 0
        """Their bytes (as counted against the bound)."""

    def oldest_kept(self, at: float) -> float:
        """The earliest ``dead_at`` kept at time ``at``."""
        return at - self.max_age

    def count(self, pruned: Pruned) -> None:
        """Log and count what a pruning pass removed."""
        count = pruned.by_age + pruned.by_bytes
        if count:
            self.pruned += count
            self.pruned_bytes += pruned.bytes
            log.warning(
                "dead_letters_pruned",
                past_age=pruned.by_age,
                beyond_bound=pruned.by_bytes,
                bytes=pruned.bytes,
                max_bytes=self.max_bytes,
                max_age_seconds=self.max_age,
            )
