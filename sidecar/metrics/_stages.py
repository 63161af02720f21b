"""Counters the delivery stages keep themselves, exported at scrape time: OAuth tokens and the fleet limiter.

=================================================  =======  ============================================================
metric                                             type     meaning
=================================================  =======  ============================================================
``sidecar_oauth_token_requests_total``             counter  token requests sent to an OAuth authorization server
``sidecar_oauth_token_failures_total``             counter  token requests that got no token (refusals included)
``sidecar_oauth_token_refusals_total``             counter  token requests refused (400/401/403: bad credentials)
``sidecar_oauth_credential_reloads_total``         counter  reloads of ``SIDECAR_OAUTH_CREDENTIALS_FILE``, by ``result``
``sidecar_fleet_fallback_seconds_total``           counter  seconds spent pacing locally because Redis was unreachable
``sidecar_fleet_outages_total``                    counter  switches to the local fallback
``sidecar_fleet_wasted_slots_total``               counter  reserved fleet slots never used
``sidecar_fleet_mode``                             gauge    1 for the limiter's mode (``redis`` or ``fallback``),
                                                            0 for the other
=================================================  =======  ============================================================

Each family appears only when its stage runs (an OAuth credentials file; ``SIDECAR_REDIS_URL``). The stages are read
through the two Protocols below, so this module imports nothing from ``send/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

_FLEET_MODES = ("redis", "fallback")


@runtime_checkable
class OAuthCounters(Protocol):
    """What the OAuth authenticator counts."""

    token_requests: int
    token_failures: int
    token_refusals: int
    reloads: int
    reload_failures: int


@runtime_checkable
class FleetCounters(Protocol):
    """What the fleet-wide Redis limiter counts."""

    outages: int

    @property
    def fallback_seconds(self) -> float:
        """Seconds spent in fallback, the current outage included."""

    @property
    def wasted_slots(self) -> int:
        """Reserved slots never used."""

    @property
    def mode(self) -> str:
        """``redis`` or ``fallback``."""


class OAuthCollector:
    """Exports an :class:`OAuthCounters` at each scrape."""

    def __init__(self, oauth: OAuthCounters) -> None:
        self._oauth = oauth

    def describe(self) -> list[Metric]:
        """Nothing up front: the families are built at each scrape."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The OAuth families, from the authenticator's counters now."""
        oauth = self._oauth
        yield CounterMetricFamily(
            "sidecar_oauth_token_requests",
            "Token requests sent to an OAuth server.",
            oauth.token_requests,
        )
        yield CounterMetricFamily(
            "sidecar_oauth_token_failures",
            "Token requests that got no token (refusals too).",
            oauth.token_failures,
        )
        yield CounterMetricFamily(
            "sidecar_oauth_token_refusals", "Token requests refused for bad credentials.", oauth.token_refusals
        )
        reloads = CounterMetricFamily(
            "sidecar_oauth_credential_reloads", "Reloads of the OAuth credentials file, by result.", labels=["result"]
        )
        reloads.add_metric(["ok"], oauth.reloads)
        reloads.add_metric(["failed"], oauth.reload_failures)
        yield reloads


class FleetCollector:
    """Exports a :class:`FleetCounters` at each scrape."""

    def __init__(self, fleet: FleetCounters) -> None:
        self._fleet = fleet

    def describe(self) -> list[Metric]:
        """Nothing up front: the families are built at each scrape."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The fleet limiter's families, from its counters now."""
        fleet = self._fleet
        yield CounterMetricFamily(
            "sidecar_fleet_fallback_seconds",
            "Seconds spent pacing locally (cap / fleet size) because Redis was unreachable.",
            fleet.fallback_seconds,
        )
        yield CounterMetricFamily("sidecar_fleet_outages", "Switches to the local fallback.", fleet.outages)
        yield CounterMetricFamily("sidecar_fleet_wasted_slots", "Reserved fleet slots never used.", fleet.wasted_slots)
        mode = GaugeMetricFamily("sidecar_fleet_mode", "1 for the fleet limiter's current mode.", labels=["mode"])
        for name in _FLEET_MODES:
            mode.add_metric([name], int(fleet.mode == name))
        yield mode


def stage_collectors(*stages: object) -> list[OAuthCollector | FleetCollector]:
    """A collector for each stage that keeps OAuth or fleet counters; other stages are skipped."""
    found: list[OAuthCollector | FleetCollector] = []
    for stage in stages:
        if isinstance(stage, OAuthCounters):
            found.append(OAuthCollector(stage))
        if isinstance(stage, FleetCounters):
            found.append(FleetCollector(stage))
    return found
