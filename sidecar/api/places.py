"""Places: a bounded count of things in progress on the event loop, taken at their start and given back at their end.

The composition root makes two pools: ``SIDECAR_MAX_CONCURRENT_CALLS`` places for the calls and requests of both
edges (gRPC, taken by :class:`~sidecar.api.limits.RequestLimits`, and the HTTP intake), and
``SIDECAR_MAX_OUTCOME_WATCHES`` places for open ``WatchOutcomes`` streams (taken by the servicer). A refusal when a
pool is full is the taker's to word.
"""

from __future__ import annotations


class Places:
    """``limit`` places, each taken by one thing in progress. Event-loop only, like every taker."""

    __slots__ = ("limit", "taken")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0

    def take(self) -> bool:
        """Take a place if one is free; False when all ``limit`` are taken."""
        if self.taken >= self.limit:
            return False
        self.taken += 1
        return True

    def give_back(self) -> None:
        """Free a place taken by :meth:`take`."""
        self.taken -= 1
