"""Which gateway a (write key, region) goes to: rendezvous hashing, and moving off a gateway that keeps failing.

Pure: no event loop, no I/O, the time passed in.

**Rendezvous (highest random weight) hashing.** Each gateway gets a score ``hash(key, region, gateway)``; a key's
gateways in order of falling score are its *rendezvous order*, and it goes to the first. Every edge that sees the same
gateway list ranks the same way without talking to the others, so a key's events from all edges meet in one gateway,
which batches them into one request. When a gateway joins or leaves, only the keys whose first choice it is (about
1 / gateways of them) move; no virtual nodes are needed for an even spread.

**Failover.** A gateway that failed (unreachable, UNAVAILABLE, RESOURCE_EXHAUSTED, a timeout) and has not answered
since is *failing* from its first such failure. While it has been failing for less than ``failover_after`` its keys
stay with it and are retried with backoff: a restart or a short overload does not reshuffle keys (which would split
their batches across gateways). Past ``failover_after`` it is *down*: its keys go to the next gateway of their
rendezvous order that is not down. A down gateway is probed: one of its keys is sent to it again at most once per
``probe_interval``; its first success makes it healthy again and its keys return. When every gateway is down, each
key stays with its first choice (there is nowhere better to go).

====================================  ========================================
gateway state                          who sends to it
====================================  ========================================
healthy, or failing < failover_after  every key whose first choice it is
down (failing >= failover_after)      one probe per ``probe_interval``; its keys
                                      go to their next gateway that is not down
====================================  ========================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sidecar.model import Region


def score(write_key: str, region: Region, gateway: str) -> int:
    """The rendezvous weight of a gateway for a key: 64 bits of a keyed hash, equal on every edge."""
    digest = hashlib.blake2b(
        f"{region.value}\x00{write_key}".encode(), key=gateway.encode()[:64], digest_size=8
    ).digest()
    return int.from_bytes(digest, "big")


def rendezvous_order(write_key: str, region: Region, gateways: Sequence[str]) -> list[str]:
    """The key's gateways, best first (ties, which need a 64-bit collision, broken by address)."""
    return sorted(gateways, key=lambda gateway: (-score(write_key, region, gateway), gateway))


@dataclass(slots=True)
class _State:
    failing_since: float | None = None
    last_probe: float = float("-inf")


class Router:
    """Rendezvous choice with failover; see the module docstring. Fed the gateway list and every attempt's result."""

    def __init__(self, failover_after: float, probe_interval: float) -> None:
        self.failover_after = failover_after
        self.probe_interval = probe_interval
        self._gateways: tuple[str, ...] = ()
        self._states: dict[str, _State] = {}

    @property
    def gateways(self) -> tuple[str, ...]:
        """The current gateway list."""
        return self._gateways

    def set_gateways(self, gateways: Sequence[str]) -> bool:
        """Replace the gateway list (kept sorted); a gateway that stays keeps its state. True when it changed."""
        new = tuple(sorted(set(gateways)))
        if new == self._gateways:
            return False
        self._gateways = new
        self._states = {gateway: self._states.get(gateway, _State()) for gateway in new}
        return True

    def down(self, gateway: str, now: float) -> bool:
        """Whether the gateway has been failing for at least ``failover_after``."""
        state = self._states.get(gateway)
        return (
            state is not None and state.failing_since is not None and now - state.failing_since >= self.failover_after
        )

    def choose(self, write_key: str, region: Region, now: float) -> str | None:
        """The gateway for this key's next attempt (None when the list is empty); may be a down gateway's probe."""
        order = rendezvous_order(write_key, region, self._gateways)
        if not order:
            return None
        for gateway in order:
            if not self.down(gateway, now):
                return gateway
            state = self._states[gateway]
            if now - state.last_probe >= self.probe_interval:
                state.last_probe = now  # this attempt is the probe
                return gateway
        return order[0]

    def failed(self, gateway: str, now: float) -> None:
        """An attempt at ``gateway`` failed in a way that says the gateway (not the batch) is the problem."""
        state = self._states.get(gateway)
        if state is not None and state.failing_since is None:
            state.failing_since = now

    def succeeded(self, gateway: str) -> None:
        """The gateway answered: it is healthy again."""
        state = self._states.get(gateway)
        if state is not None:
            state.failing_since = None
            state.last_probe = float("-inf")
