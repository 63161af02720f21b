"""The memory store (``SIDECAR_SPOOL=memory``): events in dicts, fast, and lost on exit."""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence

from sidecar.model import ShardKey, SpooledEvent
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

    @property
    def known_keys(self) -> Container[ShardKey]:
        """Keys with events."""
        return self._by_key

    @property
    def dead_bytes(self) -> int:
        """Bytes the dead letters count against their bound."""
        return self._dead_bytes

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

    def delete(self, seqs: Sequence[int]) -> None:
        """Forget delivered events."""
        for seq in seqs:
            event = self._events.pop(seq, None)
            if event is None:
                continue
            key = (event.write_key, event.region)
            by_seq = self._by_key[key]
            del by_seq[seq]
            if not by_seq:
                del self._by_key[key]

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Keep dead letters (of events still pending) in a list."""
        moving = [letter for letter in letters if letter.event.seq in self._events]
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
