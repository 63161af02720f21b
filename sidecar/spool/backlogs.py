"""The spool's per-key bookkeeping: every (write key, region)'s :class:`~sidecar.spool.store.Backlog` (events, bytes,
oldest event), known without loading its events, updated in O(1) per key per commit or removal, with subscribers told
of every change."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType

import structlog

from sidecar.model import ShardKey, SpooledEvent
from sidecar.spool.store import Backlog

BacklogListener = Callable[[ShardKey, Backlog | None], None]
"""Told, on the event loop, a key's new backlog whenever it changes; None when the key has nothing left."""

log = structlog.get_logger("sidecar.spool")


class Backlogs:
    """Every key with events waiting, and the listeners told when one changes (on the event loop only)."""

    def __init__(self) -> None:
        self._backlogs: dict[ShardKey, Backlog] = {}
        self._view: Mapping[ShardKey, Backlog] = MappingProxyType(self._backlogs)
        self._listeners: list[BacklogListener] = []

    def __contains__(self, key: object) -> bool:
        return key in self._backlogs

    def get(self, key: ShardKey) -> Backlog | None:
        """What ``key`` has waiting; None when nothing waits."""
        return self._backlogs.get(key)

    def view(self) -> Mapping[ShardKey, Backlog]:
        """A read-only, live view of every key with events waiting."""
        return self._view

    def subscribe(self, listener: BacklogListener) -> None:
        """Call ``listener(key, backlog)`` whenever a key's backlog changes (None: nothing left)."""
        self._listeners.append(listener)

    def add(self, events: Sequence[SpooledEvent]) -> None:
        """Committed events (in seq order) join their keys' backlogs: one update per key."""
        if len(events) == 1:
            event = events[0]
            self._grow((event.write_key, event.region), 1, len(event.payload), event)
            return
        added: dict[ShardKey, list[int]] = {}
        firsts: dict[ShardKey, SpooledEvent] = {}
        for event in events:
            key = (event.write_key, event.region)
            counts = added.get(key)
            if counts is None:
                added[key] = [1, len(event.payload)]
                firsts[key] = event
            else:
                counts[0] += 1
                counts[1] += len(event.payload)
        for key, (count, size) in added.items():
            self._grow(key, count, size, firsts[key])

    def remove(self, events: Sequence[SpooledEvent], oldest: dict[ShardKey, tuple[int, float]] | None) -> None:
        """Events left the store; ``oldest`` is each key's oldest event left, read in the same store job (None when
        that read failed: the old oldest stays, which is older than the truth, never newer)."""
        removed: dict[ShardKey, list[int]] = {}
        for event in events:
            length = len(event.payload)
            counts = removed.get((event.write_key, event.region))
            if counts is None:
                removed[(event.write_key, event.region)] = [1, length]
            else:
                counts[0] += 1
                counts[1] += length
        for key, (count, length) in removed.items():
            backlog = self._backlogs.get(key)
            if backlog is None:
                continue
            left = backlog.events - count
            if oldest is None:
                if left <= 0:
                    self.set(key, None)
                else:
                    self.set(key, Backlog(left, backlog.bytes - length, backlog.oldest_seq, backlog.oldest_accepted_at))
                continue
            first = oldest.get(key)
            if first is None:  # the store is the truth about emptiness
                self.set(key, None)
            else:
                self.set(key, Backlog(max(left, 1), max(backlog.bytes - length, 0), first[0], first[1]))

    def _grow(self, key: ShardKey, count: int, size: int, first: SpooledEvent) -> None:
        backlog = self._backlogs.get(key)
        if backlog is None:
            self.set(key, Backlog(count, size, first.seq, first.accepted_at))
        else:
            self.set(
                key,
                Backlog(backlog.events + count, backlog.bytes + size, backlog.oldest_seq, backlog.oldest_accepted_at),
            )

    def set(self, key: ShardKey, backlog: Backlog | None) -> None:
        """Record a key's backlog (None: nothing left) and tell the listeners."""
        if backlog is None:
            if self._backlogs.pop(key, None) is None:
                return
        else:
            self._backlogs[key] = backlog
        for listener in self._listeners:
            try:
                listener(key, backlog)
            except Exception:  # a listener's bug must not undo the bookkeeping of a job already done
                log.exception("spool_listener_failed")


def keys_of(events: Iterable[SpooledEvent]) -> list[ShardKey]:
    """The distinct keys of some events, in first-seen order."""
    return list(dict.fromkeys((event.write_key, event.region) for event in events))
