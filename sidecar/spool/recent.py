"""The spool's read-ahead: the newest committed events of each key, kept in memory (bounded) so that delivery's reads
of what was just appended need no trip to the store.

A disk spool stores every event before its call is acknowledged; delivery reads each key's next events back, usually
moments later. Reading them from SQLite (a query, a JSON aggregate to parse, one object per row, on a thread that
needs the GIL back) costs about as much CPU as storing them. The events are still in memory when their commit
succeeds, so :class:`Recent` keeps them, per key, in seq order, until they leave the spool or the bound evicts them.

What makes it exact: per key, everything the store holds at or past a seq, ``covered_from``, is here too; 0 (the
whole key) unless the key had events on disk when the spool opened or the bound evicted some (both kept in
``_partial``). Events join only through commits and replays (added in the store job's own callback, in job order),
and leave only through removals and dead letters (removed the same way), so for seqs at or past ``covered_from``
this and the store agree. A removal's job also reads the key's oldest event left: once that is here, the whole key
is (the key leaves ``_partial``). A read that starts below ``covered_from`` goes to the store. Past the bound, the
key appended to least recently loses its oldest events here.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate

from sidecar.model import ShardKey, SpooledEvent, by_key, payload_bytes

READ_AHEAD_BYTES = 8 * 2**20
"""Payload bytes the read-ahead holds over every key (about 18,000 events of 450 bytes: 17 full batches)."""

_seq = operator.attrgetter("seq")
_payload_of = operator.attrgetter("payload")


class _Tail:
    """One key's newest events in seq order (``events[head:]`` are live, never none)."""

    __slots__ = ("bytes", "events", "head")

    def __init__(self) -> None:
        self.events: list[SpooledEvent] = []
        self.head = 0
        self.bytes = 0


class Recent:
    """Each key's newest committed events (see the module docstring); on the event loop only. ``partial``: keys
    whose events below a seq are in the store only (a recovered backlog: the seq after the last one recovered)."""

    def __init__(self, max_bytes: int = READ_AHEAD_BYTES, partial: Iterable[tuple[ShardKey, int]] = ()) -> None:
        self._max_bytes = max_bytes
        self._tails: dict[ShardKey, _Tail] = {}  # least recently appended first
        self._partial: dict[ShardKey, int] = dict(partial)  # key -> covered_from, for keys not covered whole
        self.bytes = 0

    def add(self, events: Sequence[SpooledEvent]) -> None:
        """Events joined the store (a commit or a replay), in seq order."""
        for key, group in by_key(events):
            tail = self._tails.pop(key, None)  # re-inserted last: the most recently appended
            if tail is None:
                tail = _Tail()
            size = payload_bytes(group)
            tail.events.extend(group)
            tail.bytes += size
            self.bytes += size
            self._tails[key] = tail
        if self.bytes > self._max_bytes:
            # Down to seven eighths of the bound, so that a spool filling up (Segment unreachable) evicts now and
            # then, not at every commit.
            goal = self._max_bytes - self._max_bytes // 8
            for key in list(self._tails):  # least recently appended first
                self._evict(key, self.bytes - goal)
                if self.bytes <= goal:
                    break

    def _evict(self, key: ShardKey, excess: int) -> None:
        """Drop the key's oldest events here until ``excess`` bytes went (or all of them): from then on the store
        answers reads that start below what is left (``covered_from`` moves past the dropped events). Each event is
        looked at once, when it goes."""
        tail = self._tails[key]
        live, head = tail.events, tail.head
        dropped = 0
        while head < len(live) and dropped < excess:
            dropped += len(live[head].payload)
            head += 1
        self._partial[key] = live[head - 1].seq + 1
        tail.head = head
        tail.bytes -= dropped
        self.bytes -= dropped
        if head >= len(live):
            del self._tails[key]  # see remove(): an empty tail covers nothing the store holds
        elif head * 2 > len(live):
            del live[:head]
            tail.head = 0

    def remove(self, events: Sequence[SpooledEvent], oldest: Mapping[ShardKey, tuple[int, float]] | None) -> None:
        """Events left the store (delivered or dead-lettered); ``oldest``: each of their keys' oldest event left in
        the store, read in the same job (a key with none is absent; None: not known)."""
        for key, group in by_key(events):
            tail = self._tails.get(key)
            if tail is not None and group[-1].seq >= tail.events[tail.head].seq:
                self._drop(key, tail, group)
            if oldest is not None and key in self._partial:
                left = oldest.get(key)
                tail = self._tails.get(key)
                if left is None or (tail is not None and left[0] >= tail.events[tail.head].seq):
                    del self._partial[key]  # the store holds nothing of the key that is not here

    def _drop(self, key: ShardKey, tail: _Tail, group: Sequence[SpooledEvent]) -> None:
        live, head, count = tail.events, tail.head, len(group)
        if list(map(_seq, live[head : head + count])) == list(map(_seq, group)):
            gone = live[head : head + count]  # the usual case: the key's oldest events, in order
            tail.head = head + count
        else:
            leaving = set(map(_seq, group))
            gone = [event for event in live[head:] if event.seq in leaving]
            tail.events, tail.head = [event for event in live[head:] if event.seq not in leaving], 0
        size = payload_bytes(gone)
        tail.bytes -= size
        self.bytes -= size
        if tail.head >= len(tail.events):
            # Empty: forgotten. The store holds none of the key's events at or past its coverage either, so the
            # key's next commit starts a tail that covers as much.
            del self._tails[key]
        elif tail.head > 1024 and tail.head * 2 > len(tail.events):
            del tail.events[: tail.head]
            tail.head = 0

    def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent] | None:
        """The key's next events after ``after_seq`` as :meth:`~sidecar.spool.store.Store.read` answers them (at most
        ``max_events``, stopping before their payloads would exceed ``max_bytes``, at least one if any), or None when
        this cannot answer (the read starts below what is covered: ask the store)."""
        tail = self._tails.get(key)
        if tail is None or after_seq + 1 < self._partial.get(key, 0):
            return None
        live = tail.events
        start = bisect.bisect_right(live, after_seq, lo=tail.head, key=_seq)
        chosen = live[start : start + max_events]
        fits = bisect.bisect_right(list(accumulate(map(len, map(_payload_of, chosen)))), max_bytes)
        return chosen[: max(fits, 1)]
