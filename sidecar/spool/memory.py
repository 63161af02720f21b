"""The memory store (``SIDECAR_SPOOL=memory``): events in dicts, fast, and lost on exit."""

from __future__ import annotations

import secrets
from collections.abc import Container, Iterable, Sequence
from dataclasses import replace

from sidecar.model import ShardKey, SpooledEvent
from sidecar.outcomes.records import KeyRecord, OutcomeRecord
from sidecar.spool.store import DeadLetter, Pruned, Recovery, letter_size


class MemoryStore:
    """Keeps events in dicts: ``SIDECAR_SPOOL=memory``, fast, and lost on exit (as Segment's SDKs are).

    Events are held twice by reference: in seq order (:meth:`load`) and per key in seq order (insertion order is seq
    order, since seqs only grow), so that a key's reads and its oldest event never scan other keys.
    """

    inline = True
    on_disk = False

    def __init__(self) -> None:
        self._events: dict[int, SpooledEvent] = {}
        self._by_key: dict[ShardKey, dict[int, SpooledEvent]] = {}
        self.dead_letters: list[DeadLetter] = []  # in the order they died
        self._dead_bytes = 0
        self.outcomes: list[OutcomeRecord] = []  # the outcome log, numbered from 1 (lost on exit like the rest)
        self.key_states: dict[tuple[str, str], KeyRecord] = {}
        self.outcome_bytes = 0
        self.outcome_seq = 0

    @property
    def outcome_rows(self) -> int:
        """Records the outcome log holds."""
        return len(self.outcomes)

    def _log(self, records: Sequence[OutcomeRecord]) -> None:
        for record in records:
            self.outcome_seq += 1
            self.outcomes.append(replace(record, seq=self.outcome_seq))
            self.outcome_bytes += record.size

    def record_key(self, record: KeyRecord, outcome: OutcomeRecord | None) -> None:
        """Keep a key's state and its record."""
        self.key_states[record.write_key, record.region] = record
        if outcome is not None:
            self._log([outcome])

    def prune_outcomes(self, max_bytes: int, before: float) -> int:
        """Drop the oldest records while older than ``before`` or beyond ``max_bytes``."""
        dropped = 0
        while self.outcomes and (self.outcomes[dropped].at < before or self.outcome_bytes > max_bytes):
            self.outcome_bytes -= self.outcomes[dropped].size
            dropped += 1
            if dropped == len(self.outcomes):
                break
        del self.outcomes[:dropped]
        return dropped

    @property
    def known_keys(self) -> Container[ShardKey]:
        """Keys with events."""
        return self._by_key

    @property
    def dead_bytes(self) -> int:
        """Bytes the dead letters count against their bound."""
        return self._dead_bytes

    def events(self) -> list[SpooledEvent]:
        """The events held, in seq order."""
        return list(self._events.values())

    def used_bytes(self) -> int:
        """Payload bytes held (the memory spool is bounded by what its events weigh)."""
        return sum(len(event.payload) for event in self._events.values())

    def open(self, max_bytes: int | None = None) -> Recovery:
        """Nothing survives a restart."""
        return Recovery(0, {})

    def close(self) -> None:
        """Nothing to release."""

    def insert(self, events: Sequence[SpooledEvent]) -> None:
        """Keep the events."""
        for event in events:
            self._events[event.seq] = event
            key = (event.write_key, event.region)
            by_seq = self._by_key.get(key)
            if by_seq is None:
                by_seq = self._by_key[key] = {}
            by_seq[event.seq] = event

    def delete(self, seqs: Sequence[int], outcomes: Sequence[OutcomeRecord] = ()) -> None:
        """Forget delivered events; log the records of those still held."""
        held = sum(1 for seq in seqs if seq in self._events)
        self._log(outcomes[:held])
        for seq in seqs:
            event = self._events.pop(seq, None)
            if event is None:
                continue
            key = (event.write_key, event.region)
            by_seq = self._by_key[key]
            del by_seq[seq]
            if not by_seq:
                del self._by_key[key]

    def dead_letter(self, letters: Sequence[DeadLetter], outcomes: Sequence[OutcomeRecord] = ()) -> None:
        """Keep dead letters (of events still pending) in a list, and their records."""
        moving = [letter for letter in letters if letter.event.seq in self._events]
        moved = {letter.event.message_id for letter in moving}
        self._log([r for r in outcomes if r.message_id in moved])
        self.dead_letters.extend(moving)
        self._dead_bytes += sum(map(letter_size, moving))
        self.delete([letter.event.seq for letter in moving])

    def prune(self, max_dead_bytes: int, dead_before: float) -> Pruned:
        """Drop dead letters past their age, then the oldest beyond the bound."""
        kept = [letter for letter in self.dead_letters if letter.dead_at >= dead_before]
        by_age = len(self.dead_letters) - len(kept)
        left = sum(map(letter_size, kept))
        freed = self._dead_bytes - left
        by_bytes = 0
        while by_bytes < len(kept) and left > max_dead_bytes:
            size = letter_size(kept[by_bytes])
            left -= size
            freed += size
            by_bytes += 1
        self.dead_letters = kept[by_bytes:]
        self._dead_bytes = left
        return Pruned(by_age, by_bytes, freed, 0)

    def load(self, after_seq: int, max_bytes: int) -> list[SpooledEvent]:
        """Read ahead in seq order (dict order is seq order: seqs only grow)."""
        loaded: list[SpooledEvent] = []
        size = 0
        for seq, event in self._events.items():
            if seq <= after_seq:
                continue
            loaded.append(event)
            size += len(event.payload)
            if size >= max_bytes:
                break
        return loaded

    def take_replays(self, first_seq: int, accepted_at: float) -> list[SpooledEvent]:
        """Memory dead letters are replayed only through the running process; nothing is marked."""
        return []

    def read(self, key: ShardKey, after_seq: int, max_bytes: int, max_events: int) -> list[SpooledEvent]:
        """One key's next events; skips only that key's events up to after_seq (those in flight)."""
        loaded: list[SpooledEvent] = []
        size = 0
        for seq, event in self._by_key.get(key, {}).items():
            if seq <= after_seq:
                continue
            if len(loaded) >= max_events or (loaded and size + len(event.payload) > max_bytes):
                break
            loaded.append(event)
            size += len(event.payload)
        return loaded

    def oldest(self, keys: Iterable[ShardKey]) -> dict[ShardKey, tuple[int, float]]:
        """The first event of each key's dict."""
        found: dict[ShardKey, tuple[int, float]] = {}
        for key in keys:
            by_seq = self._by_key.get(key)
            if by_seq:
                event = next(iter(by_seq.values()))
                found[key] = (event.seq, event.accepted_at)
        return found


class MemoryOutcomeReader:
    """The outcome readers' view of a memory store (the same calls as
    :class:`~sidecar.spool.outcome_rows.SqliteOutcomeReader`); its spool id is new every run, so no cursor of an
    earlier run is taken for one of this run's."""

    inline = True
    """Never blocks: called on the event loop."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._id = secrets.token_hex(8)

    def close(self) -> None:
        """Nothing to release."""

    def spool_id(self) -> str:
        """This run's identity."""
        return self._id

    def bounds(self) -> tuple[int, int]:
        """(oldest seq held, newest seq ever written)."""
        records = self._store.outcomes
        newest = records[-1].seq if records else self._store.outcome_seq
        return (records[0].seq if records else 0), newest

    def after(self, seq: int, limit: int) -> list[OutcomeRecord]:
        """Up to ``limit`` records after ``seq`` (seqs are consecutive: a bisection on position)."""
        records = self._store.outcomes
        if not records:
            return []
        start = max(0, seq - records[0].seq + 1)
        return records[start : start + limit]

    def by_message(self, message_id: str) -> list[OutcomeRecord]:
        """The records of a message id, oldest first."""
        return [r for r in self._store.outcomes if r.message_id == message_id and r.kind.final]

    def waiting(self, message_id: str) -> list[tuple[str, str, int, float]]:
        """Events held with this message id: (write key, region, seq, accepted_at)."""
        return [
            (e.write_key, e.region.value, e.seq, e.accepted_at)
            for e in self._store.events()
            if e.message_id == message_id
        ]

    def last_delivered(self) -> dict[tuple[str, str], float]:
        """Nothing survives a restart: delivery's own memory knows the rest."""
        return {}

    def dead_letters(self) -> dict[tuple[str, str], dict[str, int]]:
        """Dead letters held, by (write key, region) and reason sentence."""
        found: dict[tuple[str, str], dict[str, int]] = {}
        for letter in self._store.dead_letters:
            reasons = found.setdefault((letter.event.write_key, letter.event.region.value), {})
            reasons[letter.reason] = reasons.get(letter.reason, 0) + 1
        return found
