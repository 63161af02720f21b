"""Each write key's state as Segment's answers say it (:class:`~sidecar.outcomes.records.KeyState`), owned by
delivery beside the scheduler's per-key state, and stored by the spool on every change.

======================  ==========================================  =========================================
answer                  new state                                   record on the outcome log
======================  ==========================================  =========================================
2xx                     OK                                          KEY_RECOVERED from REFUSED or RETRYING
401 / 403               REFUSED (``since``: the first refusal)      KEY_REFUSED
5xx, 429, network       RETRYING (a REFUSED key stays REFUSED)      KEY_RETRYING from OK or UNKNOWN
other 4xx               unchanged (the key was accepted; the batch was not)
======================  ==========================================  =========================================

The first change of a key to OK is stored without a record (UNKNOWN is not a state a partner watches for). A key's
stored ``since`` comes back at start (:meth:`KeyBook.load`), so REFUSED "since T" and the parked countdown
(``parked_too_long``) survive a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sidecar.delivery.scheduler import Scheduler
from sidecar.model import Region, ShardKey, write_key_hash
from sidecar.outcomes.records import KeyRecord, KeyState, OutcomeKind, OutcomeRecord, clip
from sidecar.send.classify import Delivered, Outcome, PartlyRejected, Retry, Unauthorized

_REGIONS = {region.value: region for region in Region}


@dataclass(frozen=True, slots=True)
class KeyChange:
    """A key's new state to store, with its record on the outcome log (None: stored, not shown)."""

    key: ShardKey
    record: KeyRecord
    outcome: OutcomeRecord | None


class KeyBook:
    """The state of every key delivery has heard of (from the spool's ``key_states`` and Segment's answers)."""

    def __init__(self) -> None:
        self._records: dict[ShardKey, KeyRecord] = {}
        self.delivered_at: dict[ShardKey, float] = {}
        """When Segment last answered 2xx for a key, since start (the outcome log knows what came before)."""

    def load(self, records: Iterable[KeyRecord]) -> None:
        """The states stored by earlier runs."""
        for record in records:
            if record.region in _REGIONS:
                self._records[record.write_key, _REGIONS[record.region]] = record

    def get(self, key: ShardKey) -> KeyRecord | None:
        """A key's state, or None (UNKNOWN)."""
        return self._records.get(key)

    def __iter__(self) -> Iterator[tuple[ShardKey, KeyRecord]]:
        return iter(list(self._records.items()))

    def refused_since(self, key: ShardKey) -> float | None:
        """When Segment first refused the key (Unix time), while it is REFUSED."""
        record = self._records.get(key)
        return record.since if record is not None and record.state is KeyState.REFUSED else None

    def change(self, key: ShardKey, outcome: Outcome | None, at: float) -> KeyChange | None:
        """What ``outcome`` changes for ``key`` at ``at``; None when its state stays (only changes are stored)."""
        if isinstance(outcome, Delivered | PartlyRejected):
            self.delivered_at[key] = at
            state = KeyState.OK
        elif isinstance(outcome, Unauthorized):
            state = KeyState.REFUSED
        elif isinstance(outcome, Retry):
            state = KeyState.RETRYING
        else:
            return None
        old = self._records.get(key)
        previous = KeyState.UNKNOWN if old is None else old.state
        if state is previous or (state is KeyState.RETRYING and previous is KeyState.REFUSED):
            return None
        status = outcome.status
        response = clip(getattr(outcome, "reason", ""))
        record = KeyRecord(key[0], key[1].value, state, at, status, response)
        kind: OutcomeKind | None = None
        if state is KeyState.REFUSED:
            kind = OutcomeKind.KEY_REFUSED
        elif state is KeyState.RETRYING:
            kind = OutcomeKind.KEY_RETRYING
        elif previous is not KeyState.UNKNOWN:
            kind = OutcomeKind.KEY_RECOVERED
        shown = None
        if kind is not None:
            shown = OutcomeRecord(kind, at, write_key_hash(key[0]), key[1].value, status=status, response=response)
        return KeyChange(key, record, shown)

    def apply(self, change: KeyChange) -> None:
        """The change is stored: make it the key's state."""
        self._records[change.key] = change.record


class DeliveryKeys:
    """What the outcome readers ask of delivery about keys (:class:`sidecar.outcomes.service.KeySource`): the book,
    and the scheduler's backlog and requests in flight. Read on the event loop."""

    def __init__(
        self,
        book: KeyBook,
        scheduler: Scheduler,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._book = book
        self._scheduler = scheduler
        self._clock = clock
        self._wall = wall

    def keys(self) -> list[ShardKey]:
        """Every key with a stored state or events waiting."""
        found = dict.fromkeys(key for key, _ in self._book)
        found.update(dict.fromkeys(key for key, _ in self._scheduler.waiting()))
        return list(found)

    def record(self, key: ShardKey) -> KeyRecord | None:
        """The key's state (None: UNKNOWN)."""
        return self._book.get(key)

    def backlog(self, key: ShardKey) -> tuple[int, float | None]:
        """Events waiting and when the oldest was accepted (Unix time; from the scheduler's clock)."""
        state = self._scheduler.state_of(key)
        if state is None or state.waiting_events <= 0:
            return 0, None
        return state.waiting_events, state.oldest_at - self._clock() + self._wall()

    def in_flight(self, key: ShardKey, seq: int) -> bool:
        """Whether the event ``seq`` of ``key`` is in a request now (read and not settled)."""
        state = self._scheduler.state_of(key)
        return state is not None and state.in_flight_events > 0 and state.oldest_seq <= seq <= state.cursor

    def delivered_at(self, key: ShardKey) -> float | None:
        """When Segment last answered 2xx for the key since start."""
        return self._book.delivered_at.get(key)
