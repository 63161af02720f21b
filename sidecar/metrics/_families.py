"""The metric families: what the sidecar received, accepted, refused, delivered and gave up on; how deep its spool is.

Each :class:`Metrics` owns its own ``CollectorRegistry`` (several sidecars may run in one process, as the tests do).
It listens to the pipeline as an intake and a delivery observer, and to the gRPC edge through
:class:`IntakeInterceptor`, which counts what arrives independently of what the servicer reports, so that
``received = accepted + rejected`` is a check and not a tautology.

The hot path is cheap on purpose (about 50,000 events/s): an accepted event costs two ``dict`` increments and a
context-variable read; no label is formatted and no lock is taken per event. Counters are plain integers, turned into
metric families only when Prometheus scrapes (the scrape and the pipeline share one event loop thread). Histograms
(one observation per HTTP attempt) use pre-bound label children.

Write keys appear only as their short hash (:func:`sidecar.model.write_key_hash`) and only in two families, both
capped: while fewer than ``write_key_series`` keys have a series, each scrape gives one to the busiest keys without one;
every other key counts in ``write_key_hash="other"``. A key keeps its series once it has one, so every series,
``other`` included, only grows. 10,000 write keys therefore cost ``write_key_series + 1`` series. The counts kept to
rank keys between scrapes are bounded when a key is inserted (:data:`MAX_TRACKED_KEYS`), not when Prometheus scrapes:
a sidecar nobody scrapes holds at most that many keys, and a key first seen once the table is full is ranked from the
next scrape on (trimming the table instead would hold the event loop: ~250 ms to keep the busiest half of 100,000).

A key's events from before it got its own series stay in ``other`` as well as in the key's new series, so that no
series ever goes down: ``sum(rate(...))`` is the true rate, but a plain ``sum`` of the values counts those early
events twice (docs/operations.md says so).

=====================================================  ==================  ========================================
metric                                                 labels              meaning
=====================================================  ==================  ========================================
``sidecar_events_received_total``                      ``intake, rpc``     events that arrived in calls
``sidecar_events_accepted_total``                      ``type``            events spooled (acknowledged)
``sidecar_events_rejected_total``                      ``type, reason``    events refused; reason is the gRPC code
``sidecar_events_delivered_total``                     ``region``          events Segment answered 2xx for
``sidecar_events_dead_lettered_total``                 ``reason``          events given up on
``sidecar_batches_total``                              ``region, status,   HTTP attempts by status (``0``: no
                                                       outcome``           answer) and what it meant
``sidecar_retries_total``                              ``region``          attempts that will be retried
``sidecar_rate_limiter_wait_seconds``                  (histogram)         wait for a rate-limiter grant
``sidecar_delivery_latency_seconds``                   ``region`` (hist.)  duration of one HTTP attempt
``sidecar_delivery_delay_seconds``                     ``region`` (hist.)  acceptance of a batch's oldest event to
                                                                           its delivery
``sidecar_spool_events`` / ``sidecar_spool_bytes``     (gauge)             undelivered events and their bytes
``sidecar_spool_oldest_event_age_seconds``             (gauge)             age of the oldest undelivered event
``sidecar_parked_write_keys``                          (gauge)             write keys parked on 401/403
``sidecar_parked_write_key``                           ``write_key_hash,   1 per parked key (at most
                                                       region``            ``write_key_series`` of them)
``sidecar_write_key_events_accepted_total``            ``write_key_hash``  accepted events of the busiest keys
``sidecar_health_serving``                             (gauge)             1 when the health service says SERVING
``sidecar_delivery_blocked``                           ``unit, reason``    1 per supervised unit that cannot go on
                                                                           (delivery.send, spool.writer, ...)
``sidecar_task_up``                                    ``unit``            1 per supervised unit running fine, 0
                                                                           for one that cannot go on
=====================================================  ==================  ========================================

The OAuth authenticator and the fleet limiter keep their own counters; :mod:`sidecar.metrics._stages` exports them.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from sidecar.api.status import code_of
from sidecar.errors import SidecarError
from sidecar.model import (
    Batch,
    CallType,
    DeadLetterReason,
    Event,
    Region,
    ShardKey,
    SpooledEvent,
    Warning,
    write_key_hash,
)
from sidecar.send.classify import Delivered, Outcome, Retry, Unauthorized

WRITE_KEY_SERIES = 20
"""Write keys that get their own series; the rest are summed in ``write_key_hash="other"``."""

MAX_TRACKED_KEYS = 100_000
"""Bound on the per-key counts kept between scrapes for ranking, enforced at insertion (bounded without scrapes)."""

OTHER = "other"

# Seconds: from a paced request's near-zero wait to a fleet limiter's multi-second one.
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Seconds: one HTTP attempt, bounded by SIDECAR_REQUEST_TIMEOUT (10 s by default).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Seconds: acceptance to delivery, from a flush interval to an outage of hours.
_DELAY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)

# The driver's dead-letter reasons are sentences; metrics get a stable code for each (by prefix).
_DEAD_LETTER_REASONS = (
    ("write key refused", "parked_too_long"),
    ("not delivered within", "expired"),
    ("Segment refused the event", "refused_event"),
    ("Segment refused the batch", "refused_batch"),
)

observed_in_call: ContextVar[list[int] | None] = ContextVar("sidecarobserved_in_call", default=None)
"""Set by the interceptor for the duration of one call: how many of its events the servicer reported."""


def dead_letter_code(reason: str) -> str:
    """The stable label of a dead-letter reason: a :class:`DeadLetterReason`'s value, or one for an old sentence."""
    if isinstance(reason, DeadLetterReason):
        return reason.value
    for prefix, code in _DEAD_LETTER_REASONS:
        if reason.startswith(prefix):
            return code
    return OTHER


def _outcome_name(outcome: Outcome) -> str:
    return type(outcome).__name__.lower()


class SpoolView(Protocol):
    """What metrics read from the spool at scrape time."""

    @property
    def pending_events(self) -> int:
        """Undelivered events."""

    @property
    def pending_bytes(self) -> int:
        """Their payload bytes."""


class _TopKeys:
    """Accepted-event counts per write key, exposed for at most ``slots`` keys plus ``other``; see the module doc."""

    __slots__ = ("counts", "labelled", "slots", "total")

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.counts: dict[str, int] = {}
        self.labelled: dict[str, tuple[str, int]] = {}  # write key -> (its hash, its count when it got a series)
        self.total = 0

    def count(self, key: str) -> None:
        """One accepted event of ``key``; past :data:`MAX_TRACKED_KEYS` keys, a new key is not tracked until the next
        scrape (its events still count in ``other``). O(1): no trim, so no pause on the event loop."""
        counts = self.counts
        known = counts.get(key)
        if known is not None:
            counts[key] = known + 1
        elif len(counts) < MAX_TRACKED_KEYS:
            counts[key] = 1
        self.total += 1

    def promote(self) -> None:
        """Give free series to the busiest unlabelled keys; forget unlabelled counts once no series is free."""
        free = self.slots - len(self.labelled)
        if free > 0:
            candidates = ((n, k) for k, n in self.counts.items() if k not in self.labelled)
            for count, key in heapq.nlargest(free, candidates):
                self.labelled[key] = (write_key_hash(key), count)
        if len(self.labelled) >= self.slots:
            self.counts = {key: self.counts.get(key, 0) for key in self.labelled}

    def series(self) -> Iterator[tuple[str, int]]:
        """(write key hash, all its accepted events) for every labelled key, then ``other``.

        ``other`` holds the events of keys without a series, and those a key had before it got one: it only grows,
        and ``sum(rate(...))`` over every series stays the true rate (a new series' first value is not an increase).
        """
        since_promotion = 0
        for key, (hashed, base) in self.labelled.items():
            count = self.counts.get(key, base)
            since_promotion += count - base
            yield hashed, count
        yield OTHER, self.total - since_promotion


class Metrics:
    """The sidecar's Prometheus metrics; an :class:`~sidecar.api.servicer.IntakeObserver` and a
    :class:`~sidecar.delivery.interfaces.DeliveryObserver`. See the module docstring for the families."""

    def __init__(
        self,
        spool: SpoolView,
        oldest_pending_at: Callable[[], Awaitable[float | None]],
        serving: Callable[[], bool],
        clock: Callable[[], float],
        write_key_series: int = WRITE_KEY_SERIES,
        delivery_problems: Callable[[], dict[str, str]] | None = None,
        task_units: Callable[[], dict[str, bool]] | None = None,
    ) -> None:
        self._spool = spool
        self._delivery_problems = delivery_problems
        self._task_units = task_units
        self._oldest_pending_at = oldest_pending_at
        self._serving = serving
        self._clock = clock
        self._oldest_age: float = 0.0
        self._received: dict[tuple[str, str], int] = {}
        self._accepted: dict[CallType, int] = dict.fromkeys(CallType, 0)
        self._rejected: dict[tuple[str, str], int] = {}
        self._delivered: dict[Region, int] = dict.fromkeys(Region, 0)
        self._dead_lettered: dict[str, int] = {}
        self._batches: dict[tuple[Region, int, str], int] = {}
        self._retries: dict[Region, int] = dict.fromkeys(Region, 0)
        self._parked: set[ShardKey] = set()
        self._keys = _TopKeys(write_key_series)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)
        self._wait = Histogram(
            "sidecar_rate_limiter_wait_seconds",
            "Time a request waited for a rate-limiter grant.",
            registry=self.registry,
            buckets=_WAIT_BUCKETS,
        )
        latency = Histogram(
            "sidecar_delivery_latency_seconds",
            "Duration of one HTTP attempt to Segment.",
            ["region"],
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        delay = Histogram(
            "sidecar_delivery_delay_seconds",
            "Time from the acceptance of a delivered batch's oldest event to its delivery.",
            ["region"],
            registry=self.registry,
            buckets=_DELAY_BUCKETS,
        )
        self._latency = {region: latency.labels(region=region.value) for region in Region}
        self._delay = {region: delay.labels(region=region.value) for region in Region}

    # --- the gRPC edge (called by IntakeInterceptor)

    def call_received(self, rpc: str, events: int, intake: str = "grpc") -> None:
        """A call carrying ``events`` events arrived at an intake (``grpc``; ``http``, Segment's API)."""
        key = (intake, rpc)
        self._received[key] = self._received.get(key, 0) + events

    def call_unreported(self, call_type: str, code: str, events: int) -> None:
        """Events of a call that the servicer neither accepted nor rejected (refused whole: spool full, draining)."""
        key = (call_type, code)
        self._rejected[key] = self._rejected.get(key, 0) + events

    # --- IntakeObserver

    def accepted(self, event: Event, call_type: CallType, warnings: Sequence[Warning]) -> None:
        """Count an accepted event (by type and by write key)."""
        self._accepted[call_type] += 1
        self._keys.count(event.write_key)
        box = observed_in_call.get()
        if box is not None:
            box[0] += 1

    def rejected(self, call_type: CallType, write_key: str, error: SidecarError, detail: dict[str, Any]) -> None:
        """Count a refused event by type and gRPC code."""
        key = (call_type.value, code_of(error).name.lower())
        self._rejected[key] = self._rejected.get(key, 0) + 1
        box = observed_in_call.get()
        if box is not None:
            box[0] += 1

    # --- DeliveryObserver

    def attempt_finished(self, batch: Batch, outcome: Outcome, seconds: float) -> None:
        """Count one HTTP attempt and time it."""
        region = batch.shard[1]
        key = (region, outcome.status, _outcome_name(outcome))
        self._batches[key] = self._batches.get(key, 0) + 1
        self._latency[region].observe(seconds)
        if isinstance(outcome, Delivered):
            self._delivered[region] += len(batch.events)
            if batch.events:
                self._delay[region].observe(max(0.0, self._clock() - min(e.accepted_at for e in batch.events)))
            if self._parked:
                self._parked.discard(batch.shard)
        elif isinstance(outcome, Retry):
            self._retries[region] += 1
        elif isinstance(outcome, Unauthorized):
            self._parked.add(batch.shard)

    def dead_lettered(self, events: Sequence[SpooledEvent], reason: str) -> None:
        """Count events given up on, by reason."""
        code = dead_letter_code(reason)
        self._dead_lettered[code] = self._dead_lettered.get(code, 0) + len(events)

    def rate_limited(self, seconds: float) -> None:
        """Time one wait for the rate limiter."""
        self._wait.observe(seconds)

    # --- scraping

    async def refresh(self) -> None:
        """Read what needs I/O (the oldest spooled event) before a scrape renders."""
        oldest = await self._oldest_pending_at()
        self._oldest_age = 0.0 if oldest is None else max(0.0, self._clock() - oldest)

    async def render(self) -> bytes:
        """The text exposition format of every metric, fresh."""
        await self.refresh()
        return generate_latest(self.registry)

    def watch(self, *collectors: Any) -> None:
        """Register more collectors (the OAuth and fleet counters) on this registry, rendered with every scrape."""
        for collector in collectors:
            self.registry.register(collector)

    def describe(self) -> list[Metric]:
        """Nothing up front: the families are built at each scrape (keeps registration cheap)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Build the counter and gauge families from the plain counts (called by the registry at scrape time)."""
        received = CounterMetricFamily(
            "sidecar_events_received", "Events that arrived in calls, before any check.", labels=["intake", "rpc"]
        )
        for (intake, rpc), count in sorted(self._received.items()):
            received.add_metric([intake, rpc], count)
        yield received
        accepted = CounterMetricFamily(
            "sidecar_events_accepted", "Events spooled and acknowledged, by call type.", labels=["type"]
        )
        for call_type, count in self._accepted.items():
            accepted.add_metric([call_type.value], count)
        yield accepted
        rejected = CounterMetricFamily(
            "sidecar_events_rejected", "Events refused, by call type and gRPC code.", labels=["type", "reason"]
        )
        for (call_type_name, reason), count in sorted(self._rejected.items()):
            rejected.add_metric([call_type_name, reason], count)
        yield rejected
        delivered = CounterMetricFamily(
            "sidecar_events_delivered", "Events Segment answered 2xx for, by region.", labels=["region"]
        )
        for region, count in self._delivered.items():
            delivered.add_metric([region.value], count)
        yield delivered
        dead = CounterMetricFamily("sidecar_events_dead_lettered", "Events given up on, by reason.", labels=["reason"])
        for code, count in sorted(self._dead_lettered.items()):
            dead.add_metric([code], count)
        yield dead
        batches = CounterMetricFamily(
            "sidecar_batches",
            "HTTP attempts to Segment by region, HTTP status (0: no answer) and outcome.",
            labels=["region", "status", "outcome"],
        )
        for (region, status, outcome), count in sorted(self._batches.items()):
            batches.add_metric([region.value, str(status), outcome], count)
        yield batches
        retries = CounterMetricFamily("sidecar_retries", "Attempts that will be retried, by region.", labels=["region"])
        for region, count in self._retries.items():
            retries.add_metric([region.value], count)
        yield retries
        yield GaugeMetricFamily("sidecar_spool_events", "Undelivered events in the spool.", self._spool.pending_events)
        yield GaugeMetricFamily(
            "sidecar_spool_bytes", "Payload bytes of undelivered events in the spool.", self._spool.pending_bytes
        )
        yield GaugeMetricFamily(
            "sidecar_spool_oldest_event_age_seconds",
            "Age of the oldest undelivered event (0 when the spool is empty).",
            self._oldest_age,
        )
        blocked = GaugeMetricFamily(
            "sidecar_delivery_blocked",
            "1 for each delivery unit that cannot go on (health is NOT_SERVING meanwhile), with why.",
            labels=["unit", "reason"],
        )
        for unit, reason in sorted((self._delivery_problems() if self._delivery_problems else {}).items()):
            blocked.add_metric([unit, reason], 1)
        yield blocked
        up = GaugeMetricFamily(
            "sidecar_task_up",
            "1 for each supervised background unit that runs without a problem, 0 for one that cannot go on.",
            labels=["unit"],
        )
        for unit, running in sorted((self._task_units() if self._task_units else {}).items()):
            up.add_metric([unit], 1 if running else 0)
        yield up
        yield GaugeMetricFamily("sidecar_parked_write_keys", "Write keys parked on 401/403.", len(self._parked))
        parked = GaugeMetricFamily(
            "sidecar_parked_write_key", "1 for each parked write key (capped).", labels=["write_key_hash", "region"]
        )
        shown = sorted((write_key_hash(key), region.value) for key, region in self._parked)
        for hashed, region_name in shown[: self._keys.slots]:
            parked.add_metric([hashed, region_name], 1)
        yield parked
        self._keys.promote()
        by_key = CounterMetricFamily(
            "sidecar_write_key_events_accepted",
            "Accepted events of the busiest write keys (by short hash); all others under `other`.",
            labels=["write_key_hash"],
        )
        for hashed, value in self._keys.series():
            by_key.add_metric([hashed], value)
        yield by_key
        yield GaugeMetricFamily(
            "sidecar_health_serving", "1 when the gRPC health service answers SERVING.", int(self._serving())
        )
