"""The spool's one downstream (delivery), and what it is told: what the store held when it opened, then every group of
events that joined the queue, on the event loop and in seq order. Until a downstream subscribes, what joins is held
as per-key counts and told with the rest of the store's content."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import structlog

from sidecar.model import Backlog, ShardKey, SpooledEvent

log = structlog.get_logger("sidecar.spool")


class SpoolListener(Protocol):
    """The spool's downstream: told, on the event loop and in the order it happened, what joined the queue."""

    def recovered(self, backlogs: Mapping[ShardKey, Backlog], last_seq: int) -> None:
        """What the store held when it opened, per key; no event's seq is above ``last_seq``."""

    def appended(self, events: Sequence[SpooledEvent]) -> None:
        """Events joined the queue (a commit of appends, or dead letters replayed), in seq order."""


class Downstream:
    """The listener, or what it will be told when it subscribes."""

    __slots__ = ("_held", "_listener")

    def __init__(self) -> None:
        self._listener: SpoolListener | None = None
        self._held: dict[ShardKey, Backlog] | None = None

    def subscribe(self, listener: SpoolListener, last_seq: int) -> None:
        """``listener`` is the downstream from now on; it is told what is held (if the store opened)."""
        self._listener = listener
        if self._held is not None:
            held, self._held = self._held, None
            listener.recovered(held, last_seq)

    def recovered(self, backlogs: dict[ShardKey, Backlog], last_seq: int) -> None:
        """The store opened holding ``backlogs``."""
        if self._listener is not None:
            self._listener.recovered(backlogs, last_seq)
        else:
            self._held = dict(backlogs)

    def tell(self, events: Sequence[SpooledEvent]) -> None:
        """Events joined the queue (a listener's failure is logged: it must not undo a commit already made)."""
        if self._listener is None:
            self._hold(events)
            return
        try:
            self._listener.appended(events)
        except Exception:
            log.exception("spool_listener_failed")

    def _hold(self, events: Sequence[SpooledEvent]) -> None:
        held = self._held if self._held is not None else {}
        self._held = held
        for event in events:
            key = (event.write_key, event.region)
            backlog = held.get(key)
            if backlog is None:
                held[key] = Backlog(1, len(event.payload), event.seq, event.accepted_at)
            else:
                held[key] = Backlog(
                    backlog.events + 1,
                    backlog.bytes + len(event.payload),
                    backlog.oldest_seq,
                    backlog.oldest_accepted_at,
                )
