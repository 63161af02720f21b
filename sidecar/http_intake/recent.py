"""The message ids the HTTP intake accepted moments ago, so that a library re-sending a request spools nothing twice.

Why: analytics-python and analytics-node retry only 408, 429 and 5xx, which the intake answers before spooling
anything; but analytics-go v3.3.0 retries every answer from 300 up, a 400 naming a refused event included, ten times.
Each retry repeats the request's message ids, so without this memory its valid events would be spooled (and sent to
Segment) up to ten times. Segment de-duplicates by messageId within about a day, so a duplicate that slips past this
bounded memory (after a restart, or when more than :data:`RECENT_IDS` newer ids pushed it out) costs a little
bandwidth, never a double count.

Keyed by (write key, region, messageId): ids are the caller's, and two write keys may reuse one. Only ids the caller
sent are remembered (an id the sidecar assigns is new by construction). Memory is bounded by count and by age.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from sidecar.model import Region

RECENT_IDS = 100_000
"""How many accepted message ids are remembered at most (about 20 MB at 36-character ids)."""
RECENT_SECONDS = 600.0
"""How long one is remembered at most: analytics-go's ten attempts take about 35 s with its default backoff."""


class RecentIds:
    """A bounded, insertion-ordered memory of (write key, region, messageId) accepted recently."""

    __slots__ = ("_clock", "_ids", "_limit", "_seconds")

    def __init__(self, clock: Callable[[], float], limit: int = RECENT_IDS, seconds: float = RECENT_SECONDS) -> None:
        self._ids: OrderedDict[tuple[str, Region, str], float] = OrderedDict()
        self._clock = clock
        self._limit = limit
        self._seconds = seconds

    def __len__(self) -> int:
        return len(self._ids)

    def seen(self, write_key: str, region: Region, message_id: str) -> bool:
        """Whether this id was accepted for this key and region within the window."""
        stamp = self._ids.get((write_key, region, message_id))
        return stamp is not None and self._clock() - stamp <= self._seconds

    def remember(self, write_key: str, region: Region, message_ids: list[str]) -> None:
        """Note ids just made durable; forget the oldest beyond the count or the age."""
        now = self._clock()
        ids = self._ids
        for message_id in message_ids:
            key = (write_key, region, message_id)
            ids.pop(key, None)
            ids[key] = now
        while ids and len(ids) > self._limit:
            ids.popitem(last=False)
        while ids:
            oldest = next(iter(ids.values()))
            if now - oldest <= self._seconds:
                break
            ids.popitem(last=False)
