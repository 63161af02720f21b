"""The outcome log's families: watchers following WatchOutcomes, how far behind each is, and the records kept.

==========================================  =====  ===========================================================
family                                      type   meaning
==========================================  =====  ===========================================================
``sidecar_outcome_watchers``                gauge  WatchOutcomes streams open now
``sidecar_outcome_watcher_lag_seconds``     gauge  per watcher (label ``watcher``, a number given at connect):
                                                   age of the oldest record it has not sent yet (0 caught up)
``sidecar_outcome_records``                 gauge  records the outcome log holds (SIDECAR_OUTCOMES_MAX_*)
``sidecar_outcome_bytes``                   gauge  their bytes, as counted against SIDECAR_OUTCOMES_MAX_BYTES
``sidecar_outcome_records_pruned``          counter records pruned since start (past their age or bound)
==========================================  =====  ===========================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class OutcomeCounts(Protocol):
    """What the families read at each scrape."""

    def lag(self) -> dict[int, float]:
        """Each watcher's oldest unread record's age, by watcher number."""

    def kept(self) -> tuple[int, int, int]:
        """(records held, their bytes, records pruned since start)."""


class OutcomeCollector:
    """Exports :class:`OutcomeCounts` at each scrape."""

    def __init__(self, counts: OutcomeCounts) -> None:
        self._counts = counts

    def describe(self) -> list[Metric]:
        """Nothing up front: the families are built at each scrape."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The families, from the counts now."""
        lag = self._counts.lag()
        yield GaugeMetricFamily("sidecar_outcome_watchers", "WatchOutcomes streams open now.", len(lag))
        behind = GaugeMetricFamily(
            "sidecar_outcome_watcher_lag_seconds",
            "Age of the oldest outcome record a watcher has not been sent yet (0 when caught up).",
            labels=["watcher"],
        )
        for ident, seconds in sorted(lag.items()):
            behind.add_metric([str(ident)], seconds)
        yield behind
        rows, size, pruned = self._counts.kept()
        yield GaugeMetricFamily("sidecar_outcome_records", "Records the outcome log holds.", rows)
        yield GaugeMetricFamily("sidecar_outcome_bytes", "Bytes of the outcome log's records.", size)
        yield CounterMetricFamily("sidecar_outcome_records_pruned", "Outcome records pruned since start.", pruned)
