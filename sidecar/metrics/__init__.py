"""Prometheus metrics: the families (:mod:`._families`), the gRPC interceptor that counts arrivals
(:mod:`._interceptor`), the delivery stages' own counters (:mod:`._stages`), the outcome log's (:mod:`._outcomes`)
and the ``/metrics`` endpoint (:mod:`._server`). ``SIDECAR_METRICS_LISTEN`` is ``127.0.0.1:9464`` by default,
``off`` to turn it off.

The families and their labels are tabled in :mod:`sidecar.metrics._families` and :mod:`sidecar.metrics._stages`, and
in docs/operations.md.
"""

from __future__ import annotations

from sidecar.http_endpoint import HttpEndpoint, is_loopback
from sidecar.metrics._families import (
    MAX_TRACKED_KEYS,
    OTHER,
    WRITE_KEY_SERIES,
    Metrics,
    SpoolView,
    dead_letter_code,
)
from sidecar.metrics._interceptor import IntakeInterceptor
from sidecar.metrics._outcomes import OutcomeCollector
from sidecar.metrics._server import MetricsServer
from sidecar.metrics._stages import FleetCounters, OAuthCounters, stage_collectors

__all__ = [
    "MAX_TRACKED_KEYS",
    "OTHER",
    "WRITE_KEY_SERIES",
    "FleetCounters",
    "HttpEndpoint",
    "IntakeInterceptor",
    "Metrics",
    "MetricsServer",
    "OAuthCounters",
    "OutcomeCollector",
    "SpoolView",
    "dead_letter_code",
    "is_loopback",
    "stage_collectors",
]
