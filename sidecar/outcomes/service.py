"""The outcome log's readers: WatchOutcomes' watchers, GetWriteKeyStatus / ListWriteKeys, GetMessageOutcome.

The spool writes the log (:mod:`sidecar.spool.outcome_log`) in the transactions that remove events; delivery keeps
each key's state (:mod:`sidecar.delivery.key_status`). This module only reads, through two small Protocols wired in
``sidecar/app.py``: :class:`OutcomeReader` (the log on disk, on a read connection and thread of its own) and
:class:`KeySource` (delivery's key states and backlogs).

A watcher reads the log from disk in pages of :data:`PAGE` records after its cursor, at its own pace: while its
client reads slowly, gRPC flow control holds its send, so it holds one page in memory and never slows delivery (no
lock or queue shared with the writer). Once caught up it waits on a notification that the spool gives after each
store job that wrote records (no polling). Records are filtered by key fingerprint and kind as they are read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from sidecar.errors import CursorExpired, InvalidEvent, ShuttingDown
from sidecar.model import DeadLetterReason, Region, ShardKey, write_key_hash
from sidecar.outcomes import cursor
from sidecar.outcomes.records import (
    KeyRecord,
    KeyState,
    KeyStatus,
    MessageOutcome,
    MessageState,
    OutcomeKind,
    OutcomeRecord,
)

PAGE = 500
"""Records one watcher reads from disk at once (what it holds in memory)."""
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1_000
_REASON_CODES = {reason.description: reason.value for reason in DeadLetterReason}
_MESSAGE_STATES = {
    OutcomeKind.DELIVERED: MessageState.DELIVERED,
    OutcomeKind.DEAD_LETTERED: MessageState.DEAD_LETTERED,
    OutcomeKind.EXPIRED: MessageState.EXPIRED,
}
T = TypeVar("T")


class OutcomeReader(Protocol):
    """Reads of the outcome log and the spool (blocking unless ``inline``)."""

    inline: bool

    def close(self) -> None:
        """Release the connection."""

    def spool_id(self) -> str:
        """The spool's identity."""

    def bounds(self) -> tuple[int, int]:
        """(oldest seq held, or 0 when empty; newest seq ever written)."""

    def after(self, seq: int, limit: int) -> list[OutcomeRecord]:
        """Up to ``limit`` records after ``seq``, in order."""

    def by_message(self, message_id: str) -> list[OutcomeRecord]:
        """The records of one message id, oldest first."""

    def waiting(self, message_id: str) -> list[tuple[str, str, int, float]]:
        """Events still in the spool with this id: (write key, region, seq, accepted_at)."""

    def forwarded(self, message_id: str) -> list[tuple[str, str, float]]:
        """An edge: events with this id a gateway holds: (fingerprint, region, accepted_at)."""

    def last_delivered(self) -> dict[tuple[str, str], float]:
        """When each (fingerprint, region) last had a DELIVERED record."""

    def dead_letters(self) -> dict[tuple[str, str], dict[str, int]]:
        """Dead letters held, by (write key, region) and reason sentence."""


class KeySource(Protocol):
    """Delivery's knowledge of keys."""

    def keys(self) -> list[ShardKey]:
        """Every key with a stored state or a backlog."""

    def record(self, key: ShardKey) -> KeyRecord | None:
        """A key's state (None: UNKNOWN)."""

    def backlog(self, key: ShardKey) -> tuple[int, float | None]:
        """Events waiting, and when the oldest was accepted."""

    def in_flight(self, key: ShardKey, seq: int) -> bool:
        """Whether event ``seq`` of ``key`` is in a request now."""

    def delivered_at(self, key: ShardKey) -> float | None:
        """When Segment last answered 2xx for the key, since start."""


class Watcher:
    """One WatchOutcomes stream, as the metrics see it: its place and how long its oldest unread record waits."""

    __slots__ = ("ident", "seq", "unread_since", "waiting")

    def __init__(self, ident: int, seq: int) -> None:
        self.ident = ident
        self.seq = seq
        self.waiting = False  # caught up, waiting for news
        self.unread_since: float | None = None  # when the oldest record it has not sent was written (about)


class Outcomes:
    """Serves the outcome log (see the module docstring); ``start`` before use, ``stop`` idempotent."""

    def __init__(
        self,
        reader: OutcomeReader,
        keys: KeySource,
        totals: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0),
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._reader = reader
        self.kept = totals
        """(records held, their bytes, records pruned since start): the spool's count, for the metrics."""
        self._keys = keys
        self._wall = wall
        self._thread: ThreadPoolExecutor | None = None
        self._closed = False  # stopped: watchers still open end with UNAVAILABLE instead of reopening the reader
        self._news = asyncio.Event()
        self._spool_id = ""
        self._delivered: dict[tuple[str, str], float] = {}
        self._ids = itertools.count(1)
        self.watchers: dict[int, Watcher] = {}

    async def start(self) -> None:
        """Open the reader and learn the spool's identity and each key's last delivery from the log."""
        self._closed = False
        if not self._reader.inline and self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outcomes-read")
        self._spool_id = await self._read(self._reader.spool_id)
        self._delivered = await self._read(self._reader.last_delivered)

    async def stop(self) -> None:
        """Wake every watcher (they end with UNAVAILABLE) and close the reader; idempotent, safe without start."""
        self._closed = True
        self.written()
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await asyncio.get_running_loop().run_in_executor(thread, self._reader.close)
            thread.shutdown(wait=True)

    async def _read(self, function: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise ShuttingDown("the sidecar is shutting down; watch again after it restarts, from your last cursor")
        if self._thread is None:
            return function(*args)
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    def written(self) -> None:
        """The spool committed records: wake the watchers waiting for news (called on the event loop)."""
        news, self._news = self._news, asyncio.Event()
        news.set()
        now = self._wall()
        for watcher in self.watchers.values():
            if not watcher.waiting and watcher.unread_since is None:
                watcher.unread_since = now

    # --- WatchOutcomes

    async def watch(
        self, after_cursor: str, write_keys: Sequence[str], kinds: Iterable[int], from_now: bool
    ) -> tuple[str, AsyncGenerator[OutcomeRecord, None]]:
        """Where a watch starts, and its records: the cursor it starts after (the one given; without one, the newest
        record's with ``from_now`` or when the log holds none, else the position just before the oldest held), and a
        generator of every record after it, then each new one as it is written, forever; filtered by keys (their
        fingerprints) and kinds.

        Everything is checked here, before the generator starts, so that the edge can fail the call before it tells
        the client the start cursor: CursorExpired (OUT_OF_RANGE) for a cursor older than the window, InvalidEvent
        (INVALID_ARGUMENT) for one that is not this spool's, or for an unknown kind."""
        fingerprints = {write_key_hash(key) for key in write_keys if key}
        wanted = {OutcomeKind(k) for k in kinds if k in OutcomeKind._value2member_map_}
        if any(k not in OutcomeKind._value2member_map_ and k != 0 for k in kinds):
            raise InvalidEvent.single("kinds", "names an unknown OutcomeKind")
        oldest, newest = await self._read(self._reader.bounds)
        if after_cursor:
            seq = cursor.decode(after_cursor, self._spool_id)
            if seq > newest:
                raise InvalidEvent.single("after_cursor", "is ahead of the outcome log (a cursor of another spool?)")
            if seq < newest and (oldest == 0 or oldest > seq + 1):
                held = cursor.encode(self._spool_id, oldest) if oldest else ""
                raise CursorExpired(
                    "after_cursor is older than the outcome log's window (SIDECAR_OUTCOMES_MAX_AGE,"
                    " SIDECAR_OUTCOMES_MAX_BYTES): records after it were pruned; the oldest record held has cursor"
                    f" {held or '(none: the log is empty)'}; start again with an empty after_cursor to read from it",
                    held,
                )
        else:
            # An empty log whose records were all pruned starts after the newest, not at 0: the start cursor is
            # handed to the client to resume from, and a cursor before pruned records would be OUT_OF_RANGE.
            seq = newest if from_now or not oldest else oldest - 1
        return cursor.encode(self._spool_id, seq), self._follow(seq, fingerprints, wanted)

    async def _follow(
        self, seq: int, fingerprints: set[str], wanted: set[OutcomeKind]
    ) -> AsyncGenerator[OutcomeRecord, None]:
        watcher = Watcher(next(self._ids), seq)
        self.watchers[watcher.ident] = watcher
        try:
            while True:
                news = self._news  # taken before the read: a record written after it wakes the wait below
                page = await self._read(self._reader.after, watcher.seq, PAGE)
                if page and watcher.unread_since is None:
                    watcher.unread_since = page[0].at
                for record in page:
                    watcher.seq = record.seq
                    if (not fingerprints or record.fingerprint in fingerprints) and (
                        not wanted or record.kind in wanted
                    ):
                        yield record
                if len(page) < PAGE:
                    watcher.waiting = True
                    watcher.unread_since = None
                    await news.wait()
                    watcher.waiting = False
        finally:
            del self.watchers[watcher.ident]

    def cursor_of(self, record: OutcomeRecord) -> str:
        """A record's cursor."""
        return cursor.encode(self._spool_id, record.seq)

    def lag(self) -> dict[int, float]:
        """Each watcher's oldest unread record's age in seconds (0 when caught up)."""
        now = self._wall()
        return {
            ident: 0.0 if w.unread_since is None else max(0.0, now - w.unread_since)
            for ident, w in self.watchers.items()
        }

    # --- key status

    async def key_status(self, write_key: str, region: Region) -> KeyStatus:
        """What the sidecar knows of one key (UNKNOWN for a key it never sent)."""
        dead = await self._read(self._reader.dead_letters)
        return self._status((write_key, region), dead)

    def _status(self, key: ShardKey, dead: dict[tuple[str, str], dict[str, int]]) -> KeyStatus:
        record = self._keys.record(key)
        fingerprint = write_key_hash(key[0])
        events, oldest = self._keys.backlog(key)
        delivered = self._keys.delivered_at(key) or self._delivered.get((fingerprint, key[1].value))
        reasons: dict[str, int] = {}
        for sentence, count in dead.get((key[0], key[1].value), {}).items():
            code = _REASON_CODES.get(sentence, sentence)
            reasons[code] = reasons.get(code, 0) + count
        return KeyStatus(
            fingerprint,
            key[1].value,
            KeyState.UNKNOWN if record is None else record.state,
            None if record is None else record.since,
            0 if record is None else record.status,
            "" if record is None else record.response,
            events,
            oldest,
            delivered,
            reasons,
        )

    async def list_keys(self, page_size: int, page_token: str, state: int) -> tuple[list[KeyStatus], str]:
        """One page of every key's status, ordered by (fingerprint, region), optionally only one state."""
        if page_size < 0:
            raise InvalidEvent.single("page_size", "must not be negative")
        if state and state not in KeyState._value2member_map_:
            raise InvalidEvent.single("state", "names an unknown WriteKeyState")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _page_after(page_token)
        dead = await self._read(self._reader.dead_letters)
        keys = set(self._keys.keys())
        regions = {region.value: region for region in Region}
        keys.update((write_key, regions[region]) for write_key, region in dead if region in regions)
        ordered = sorted(((write_key_hash(k[0]), k[1].value), k) for k in keys)
        page: list[KeyStatus] = []
        for place, key in ordered:
            if after is not None and place <= after:
                continue
            status = self._status(key, dead)
            if state and status.state != state:
                continue
            if len(page) == size:
                last = (page[-1].fingerprint, page[-1].region)
                token = base64.urlsafe_b64encode(f"{last[0]}.{last[1]}".encode()).decode()
                return page, token
            page.append(status)
        return page, ""

    async def key_table(self) -> list[dict[str, object]]:
        """Every key's status as plain JSON values (the debugger page's key table), by fingerprint."""
        page, _ = await self.list_keys(MAX_PAGE_SIZE, "", 0)
        return [
            {
                "fingerprint": s.fingerprint,
                "region": s.region,
                "state": s.state.name,
                "since": s.since,
                "last_status": s.status,
                "last_response": s.response,
                "backlog_events": s.backlog_events,
                "dead_letters": s.dead_letters_by_reason or {},
            }
            for s in page
        ]

    # --- GetMessageOutcome

    async def message_outcome(self, message_id: str, write_key: str = "") -> MessageOutcome:
        """Where one event is: in the spool (waiting, in flight), or its latest final record, or UNKNOWN."""
        if not message_id:
            raise InvalidEvent.single("message_id", "is required")
        fingerprint = write_key_hash(write_key) if write_key else ""
        held = await self._read(self._reader.waiting, message_id)
        regions = {region.value: region for region in Region}
        for key_text, region_text, seq, accepted_at in held:
            if write_key and key_text != write_key:
                continue
            key = (key_text, regions[region_text])
            state = MessageState.IN_FLIGHT if self._keys.in_flight(key, seq) else MessageState.WAITING
            return MessageOutcome(state, None, write_key_hash(key_text), region_text, accepted_at)
        for found_fingerprint, region_text, accepted_at in await self._read(self._reader.forwarded, message_id):
            if not fingerprint or found_fingerprint == fingerprint:  # a gateway holds it: in flight, for this edge
                return MessageOutcome(MessageState.IN_FLIGHT, None, found_fingerprint, region_text, accepted_at)
        records = [
            r
            for r in await self._read(self._reader.by_message, message_id)
            if r.kind.final and (not fingerprint or r.fingerprint == fingerprint)
        ]
        if not records:
            return MessageOutcome(MessageState.UNKNOWN)
        last = records[-1]
        return MessageOutcome(_MESSAGE_STATES[last.kind], last, last.fingerprint, last.region, last.accepted_at)


def _page_after(token: str) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        fingerprint, region = base64.urlsafe_b64decode(token.encode()).decode().split(".")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidEvent.single("page_token", "is not a next_page_token of ListWriteKeys") from None
    return fingerprint, region
