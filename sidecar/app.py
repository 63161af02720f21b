"""The composition root: builds every stage from the settings, wires each to the next, starts and stops them.

Stages start downstream first (spool, delivery, then the gRPC edge) and stop upstream first (the edge stops accepting,
delivery drains within the grace period, then the spool closes), so no stage ever hands work to a stopped one. The
operations endpoints (``/metrics``, the debugger page) start before the gRPC edge and stop last, so a drain can be
watched.

Health (``grpc.health.v1``, for the empty service name and ``segment.sidecar.v1.SidecarService``): SERVING only while
the sidecar accepts calls, its spool folder is writable, and no supervised unit reports a problem. A probe writes,
fsyncs and removes a small file in ``SIDECAR_SPOOL_DIR`` at start and every ``HEALTH_PROBE_INTERVAL`` seconds (the
memory spool is always writable); NOT_SERVING from the moment a drain begins.

Every background task runs under a :class:`~sidecar.tasks.Supervisor`, all gathered in one
:class:`~sidecar.tasks.Supervision`: the spool's writer and pruner, delivery's dispatcher, requests and replays, the
OAuth watcher and token requests, the gateway resolver, and the health probe here. A unit that fails is logged,
restarted, named in the ``delivery_blocked`` log line, in health (NOT_SERVING) and in ``sidecar_task_up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import structlog
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.api.auth import TokenInterceptor
from sidecar.api.limits import RequestLimits
from sidecar.api.places import Places
from sidecar.api.reflection import enable_reflection
from sidecar.api.server_options import server_arguments
from sidecar.api.servicer import IntakeObserver, SidecarServicer
from sidecar.backoff import Backoff
from sidecar.config import Settings
from sidecar.debugger import Debugger
from sidecar.delivery.dispatcher import DeliveryObserver, DeliveryPolicy, Dispatcher, Sender
from sidecar.delivery.key_status import DeliveryKeys
from sidecar.enrich.enricher import Enricher
from sidecar.errors import ConfigError, SidecarError
from sidecar.forward.metrics import EdgeIntakeInterceptor, ForwardMetrics
from sidecar.forward.sender import ForwardingSender
from sidecar.http_intake import HttpIntake
from sidecar.intake import Intake
from sidecar.metrics import IntakeInterceptor, Metrics, MetricsServer, OutcomeCollector, stage_collectors
from sidecar.model import Region
from sidecar.outcomes.service import OutcomeReader, Outcomes
from sidecar.outcomes.tiers import GatewayFollower
from sidecar.send.auth import Authenticator, BasicAuthenticator
from sidecar.send.http import HttpSender, envelope_overhead
from sidecar.send.ratelimit import PacedLimiter, RateLimiter
from sidecar.spool import MemoryStore, Spool, SqliteStore, Store
from sidecar.spool.memory import MemoryOutcomeReader
from sidecar.spool.outcome_rows import SqliteOutcomeReader
from sidecar.tasks import Supervision, Supervisor
from sidecar.validate.credentials import CredentialsRequired
from sidecar.validate.limits import MAX_STRING_CHARS
from sidecar.validate.rules import Validator, default_validators

log = structlog.get_logger("sidecar")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SidecarService"].full_name

HEALTH_PROBE_INTERVAL = 5.0
"""Seconds between two writability probes of the spool folder."""
HEALTH_PROBE_FILE = ".health-probe"


def probe_writable(directory: Path) -> str | None:
    """Write, fsync and remove a small file in ``directory``; None when that works, else why not (blocking)."""
    path = directory / HEALTH_PROBE_FILE
    try:
        with path.open("wb") as probe:
            probe.write(b"ok")
            probe.flush()
            os.fsync(probe.fileno())
        path.unlink()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def build_limiter(settings: Settings) -> RateLimiter:
    """The fleet-wide Redis limiter when SIDECAR_REDIS_URL is set, else a local paced limiter."""
    if settings.redis_url:
        from sidecar.send.fleet import RedisLimiter  # noqa: PLC0415 - only deployments with Redis load it

        return RedisLimiter.from_settings(settings)
    return PacedLimiter(settings.max_requests_per_second)


def build_authenticator(settings: Settings, supervision: Supervision | None = None) -> Authenticator:
    """OAuth for the keys in SIDECAR_OAUTH_CREDENTIALS_FILE (Basic for the others), else Basic for every key."""
    if settings.oauth_credentials_file is not None or settings.oauth_required:
        from sidecar.send.oauth import OAuthAuthenticator  # noqa: PLC0415 - only OAuth deployments load it

        return OAuthAuthenticator.from_settings(settings, supervision)
    return BasicAuthenticator()


def build_sender(
    settings: Settings,
    authenticator: Authenticator,
    forward_metrics: ForwardMetrics,
    supervision: Supervision | None = None,
) -> tuple[RateLimiter | None, Sender]:
    """The rate limiter and the sender: to Segment under the cap, or, in edge mode (SIDECAR_FORWARD_TO), to the
    gateway tier, which paces Segment's cap itself (docs/fleet.md: no limiter, no Redis on an edge)."""
    if not settings.forward_to:
        endpoints = {region: settings.endpoint(region) for region in Region}
        return build_limiter(settings), HttpSender(endpoints, authenticator, settings.request_timeout)
    forwarder = ForwardingSender(
        settings.forward_to,
        settings.forward_token.get_secret_value() if settings.forward_token is not None else None,
        settings.request_timeout,
        settings.forward_failover_after,
        settings.forward_resolve_interval,
        forward_metrics,
        supervision=supervision,
    )
    return None, forwarder


def check_batch_bytes(settings: Settings) -> None:
    """Refuse a SIDECAR_BATCH_MAX_BYTES that the envelope of the longest write key a caller may send fills alone:
    no event of such a key could ever be sent."""
    smallest = envelope_overhead("k" * MAX_STRING_CHARS) + 1
    if settings.batch_max_bytes < smallest:
        raise ConfigError(
            [
                f"SIDECAR_BATCH_MAX_BYTES: {settings.batch_max_bytes} bytes cannot hold one event beside a write key "
                f"of {MAX_STRING_CHARS} characters, the longest a caller may send; use at least {smallest}"
            ]
        )


def build_validators(settings: Settings) -> list[Validator]:
    """The partner rules, then the Spec check unless SIDECAR_SPEC_MODE=off."""
    extra: list[Validator] = []
    if settings.spec_mode != "off":
        from sidecar.validate.spec_rule import SpecRule  # noqa: PLC0415 - keeps `off` free of the catalog

        extra.append(SpecRule(settings.spec_mode, settings.spec_allow))
    return default_validators(extra)


@dataclass
class Observers:
    """Who listens to the pipeline (metrics, the debugger page); empty by default."""

    intake: list[IntakeObserver] = field(default_factory=list)
    delivery: list[DeliveryObserver] = field(default_factory=list)


def build_outcomes(
    store: Store, spool: Spool, dispatcher: Dispatcher, metrics: Metrics | None, debugger: Debugger | None
) -> Outcomes:
    """The outcome log's readers: the store's log (the memory store's lists, or the database on a connection of its
    own), delivery's key states, woken by the spool after each write, counted by the metrics, shown by the
    debugger page's key table."""
    reader: OutcomeReader
    if isinstance(store, MemoryStore):
        reader = MemoryOutcomeReader(store)
    else:
        assert isinstance(store, SqliteStore)
        reader = SqliteOutcomeReader(store.path)
    outcomes = Outcomes(reader, DeliveryKeys(dispatcher.keys, dispatcher.scheduler), spool.outcome_totals)
    spool.outcomes.listen(outcomes.written)
    if metrics is not None:
        metrics.watch(OutcomeCollector(outcomes))
    if debugger is not None:
        debugger.show_keys(outcomes.key_table)
    return outcomes


def build_follower(settings: Settings, spool: Spool, supervision: Supervision) -> GatewayFollower | None:
    """An edge follows its gateways' outcome logs, so that its own final records say what the gateways settled."""
    if settings.mode != "edge" or not settings.forward_to or settings.spool != "disk":
        return None
    token = settings.forward_token.get_secret_value() if settings.forward_token is not None else None
    return GatewayFollower(settings.forward_to, token, spool, supervision)


def build_http_intake(
    settings: Settings,
    intake: Intake,
    observers: Sequence[IntakeObserver],
    metrics: Metrics | None,
    places: Places,
) -> HttpIntake | None:
    """Segment's HTTP Tracking API (``SIDECAR_HTTP_LISTEN``), a second edge in front of the same intake; None when
    the variable is unset."""
    if settings.http_listen is None:
        return None
    return HttpIntake.from_settings(settings, intake, observers, metrics, places)


class Sidecar:
    """The whole sidecar, in one process: ``await start()``, serve, ``await stop()``."""

    def __init__(self, settings: Settings, observers: Observers | None = None) -> None:
        check_batch_bytes(settings)
        self.settings = settings
        observers = observers or Observers()
        intake_observers = list(observers.intake)
        delivery_observers = list(observers.delivery)
        self._health_dirty = asyncio.Event()
        self.supervision = Supervision(on_change=self._health_dirty.set)
        self._tasks = Supervisor("sidecar", supervision=self.supervision)
        store: Store = MemoryStore() if settings.spool == "memory" else SqliteStore(settings.spool_dir)
        self.spool = Spool(
            store,
            settings.spool_max_bytes,
            settings.spool_dead_letter_max_bytes,
            settings.spool_dead_letter_max_age,
            supervision=self.supervision,
            outcomes_max_age=settings.outcomes_max_age,
            outcomes_max_bytes=settings.outcomes_max_bytes,
        )
        self.metrics: Metrics | None = None
        self.metrics_server: MetricsServer | None = None
        if settings.metrics_listen is not None:
            self.metrics = Metrics(
                self.spool,
                self.oldest_pending_at,
                lambda: self.serving,
                time.time,
                delivery_problems=lambda: self.supervision.problems,
                task_units=self.supervision.units,
            )
            self.metrics_server = MetricsServer(self.metrics, settings.metrics_listen)
            intake_observers.append(self.metrics)
            delivery_observers.append(self.metrics)
        self.debugger: Debugger | None = None
        if settings.debugger_listen is not None:
            self.debugger = Debugger(settings.debugger_listen, settings.debugger_hosts)
            intake_observers.append(self.debugger)
            delivery_observers.append(self.debugger)
        self.forward_metrics = ForwardMetrics()
        if self.metrics is not None:
            self.metrics.registry.register(self.forward_metrics)
        self.authenticator = build_authenticator(settings, self.supervision)
        self.limiter, self.sender = build_sender(settings, self.authenticator, self.forward_metrics, self.supervision)
        if self.metrics is not None:
            self.metrics.watch(*stage_collectors(self.authenticator, self.limiter))
        policy = DeliveryPolicy(
            flush_interval=settings.flush_interval,
            batch_max_bytes=settings.batch_max_bytes,
            batch_max_events=settings.batch_max_events,
            max_in_flight=settings.max_in_flight,
            max_event_age=settings.max_event_age,
            parked_retry_interval=settings.parked_retry_interval,
            parked_dead_letter_after=settings.parked_dead_letter_after,
            backoff=Backoff(settings.retry_base_delay, settings.retry_max_delay),
        )
        self.dispatcher = Dispatcher(
            self.spool,
            self.sender,
            policy,
            envelope_overhead,
            delivery_observers,
            limiter=self.limiter,
            supervision=self.supervision,
        )
        validators = build_validators(settings)
        if settings.oauth_required:
            validators.append(CredentialsRequired(self.authenticator.requires_credentials))
        intake = Intake(
            validators, Enricher(settings.integration_name, settings.integration_version), self.spool, self.dispatcher
        )
        self.outcomes = build_outcomes(store, self.spool, self.dispatcher, self.metrics, self.debugger)
        self.tiers = build_follower(settings, self.spool, self.supervision)
        # Two pools of places: both edges' calls in progress together, and open watches (a watch lasts, a call not).
        self.call_places = Places(settings.max_concurrent_calls)
        self.watch_places = Places(settings.max_outcome_watches)
        self.servicer = SidecarServicer(
            intake, settings.default_region, intake_observers, self.outcomes, watch_places=self.watch_places
        )
        self.http_intake = build_http_intake(settings, intake, intake_observers, self.metrics, self.call_places)
        self.health = health_aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self.port = 0
        self._started = False
        self._stopped = False
        self._spool_open = False
        self.spool_problem: str | None = None
        self._health_status: Any = None
        self.health_probe_interval = HEALTH_PROBE_INTERVAL

    @property
    def serving(self) -> bool:
        """Whether health answers SERVING: accepting calls, with a writable spool, and every supervised unit able to go
        on."""
        return (
            self._started
            and not self._stopped
            and self.servicer.accepting
            and self.spool_problem is None
            and not self.supervision.problems
        )

    async def check_health(self) -> bool:
        """Probe the spool folder now and update the health service; return whether it is SERVING."""
        if self.settings.spool == "disk" and not self._stopped:
            problem = await asyncio.to_thread(probe_writable, self.settings.spool_dir)
            if problem != self.spool_problem:
                if problem is None:
                    log.info("spool_writable_again", spool_dir=str(self.settings.spool_dir))
                else:
                    log.error("spool_not_writable", spool_dir=str(self.settings.spool_dir), reason=problem)
            self.spool_problem = problem
        serving = self.serving
        await self._set_health(
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        return serving

    async def _probe_loop(self) -> None:
        while True:
            # Every interval, and at once when a supervised unit says it cannot go on (or goes on again).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.health_probe_interval):
                    await self._health_dirty.wait()
            if self._health_dirty.is_set():
                self._health_dirty.clear()
                problems = self.supervision.problems
                if problems:
                    log.error("delivery_blocked", problems=problems)
            await self.check_health()
            self._tasks.report("health_probe", None)

    async def oldest_pending_at(self) -> float | None:
        """Acceptance time (Unix) of the first undelivered event in spool order, or None when there is none."""
        if not self._spool_open:
            return None
        return await self.spool.oldest_accepted_at()

    async def start(self) -> None:
        """Open the spool (recovering what it holds), start delivery, then bind and serve gRPC."""
        if self._started:
            return
        self._started = True
        await self.spool.start()
        self._spool_open = True
        self.dispatcher.keys.load(self.spool.key_records)
        await self.outcomes.start()
        if self.spool.recovered:
            log.info("spool_recovered", events=self.spool.recovered, bytes=self.spool.pending_bytes)
        for stage in (self.authenticator, self.limiter, self.sender, self.dispatcher, self.tiers):
            if stage is not None:
                await stage.start()
        for endpoint in (self.metrics_server, self.debugger):
            if endpoint is not None:
                await endpoint.start()
        if self.http_intake is not None:
            await self.http_intake.start()  # after the spool and delivery: it spools what it acknowledges
        # The first interceptor is the outermost: the event counter sees every call, also those the others refuse
        # (unauthenticated, too many in progress, undecodable), so received = accepted + rejected holds.
        interceptors: list[grpc.aio.ServerInterceptor] = []  # type: ignore[type-arg]  # generic only in grpc-stubs
        if self.metrics is not None:
            interceptors.append(IntakeInterceptor(self.metrics))
        if self.settings.auth_token is not None:
            interceptors.append(TokenInterceptor(self.settings.auth_token.get_secret_value()))  # refuse early
        interceptors.append(RequestLimits(self.call_places))
        interceptors.append(EdgeIntakeInterceptor(self.forward_metrics))
        limits = server_arguments(self.settings.max_concurrent_calls, self.settings.max_outcome_watches)
        server = grpc.aio.server(interceptors=interceptors, **limits.as_kwargs())
        pb_grpc.add_SidecarServiceServicer_to_server(self.servicer, server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        enable_reflection(server, (SERVICE_NAME, health.SERVICE_NAME))
        self.port = server.add_insecure_port(self.settings.listen)
        if self.port == 0 and not self.settings.listen.startswith("unix:"):
            raise SidecarError(f"cannot listen on {self.settings.listen} (SIDECAR_LISTEN): address in use?")
        await server.start()
        self._server = server
        await self.check_health()
        await self._tasks.start()
        self._tasks.keep("health_probe", self._probe_loop)
        log.info(
            "sidecar_started",
            listen=self.settings.listen,
            port=self.port,
            metrics=self.settings.metrics_listen,
            debugger=self.settings.debugger_listen,
            spool=self.settings.spool,
            integration=self.settings.integration_name,
            mode=self.settings.mode,
            # An edge has no rate limit of its own: its gateways pace Segment's cap.
            cap=None if self.settings.mode == "edge" else self.settings.max_requests_per_second,
            fleet=self.settings.redis_url is not None,
            forward_to=list(self.settings.forward_to) or None,
            auth=self.settings.auth_token is not None,
        )

    async def _set_health(self, status: Any) -> None:
        if status == self._health_status:
            return
        self._health_status = status
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)
        log.info("health_changed", status=health_pb2.HealthCheckResponse.ServingStatus.Name(status))

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, drain within ``grace`` seconds, keep the rest spooled; idempotent."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        grace = self.settings.shutdown_grace if grace is None else grace
        started = time.monotonic()
        self.servicer.accepting = False
        if self.http_intake is not None:
            await self.http_intake.stop()  # before the drain: what it accepted is in the spool when delivery drains
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._tasks.stop()
        delivered_before = self.dispatcher.delivered
        await self.dispatcher.drain(started + grace)
        await self.dispatcher.stop()
        if self._server is not None:
            await self._server.stop(0.5)
        for stage in (self.sender, self.limiter, self.authenticator):
            if stage is not None:
                await stage.stop()
        left = self.spool.pending_events
        if self.tiers is not None:
            await self.tiers.stop()
        await self.outcomes.stop()
        self._spool_open = False
        await self.spool.stop()
        for endpoint in (self.debugger, self.metrics_server):
            if endpoint is not None:
                await endpoint.stop()
        log.info(
            "sidecar_stopped",
            seconds=round(time.monotonic() - started, 3),
            delivered_while_draining=self.dispatcher.delivered - delivered_before,
            delivered_total=self.dispatcher.delivered,
            dead_lettered_total=self.dispatcher.dead_lettered_total,
            left_in_spool=left,
            spool=self.settings.spool,
        )
