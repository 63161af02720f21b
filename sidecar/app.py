"""The composition root: builds every stage from the settings, wires each to the next, starts and stops them.

Stages start downstream first (spool, delivery, then the gRPC edge) and stop upstream first (the edge stops accepting,
delivery drains within the grace period, then the spool closes), so no stage ever hands work to a stopped one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1 import _async as health_aio
from grpc_reflection.v1alpha import reflection

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.api.servicer import MAX_BATCH_BYTES, Intake, IntakeObserver, SidecarServicer
from sidecar.batch.driver import DeliveryDriver, DeliveryObserver, DeliveryPolicy
from sidecar.config import Settings
from sidecar.deliver.auth import Authenticator, BasicAuthenticator
from sidecar.deliver.backoff import Backoff
from sidecar.deliver.http import HttpSender, envelope_overhead
from sidecar.deliver.ratelimit import PacedLimiter, RateLimiter
from sidecar.enrich.enricher import Enricher
from sidecar.errors import SidecarError
from sidecar.model import Region
from sidecar.spool import MemoryStore, Spool, SqliteStore, Store
from sidecar.validate.rules import Validator, default_validators

log = structlog.get_logger("sidecar")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SidecarService"].full_name


def build_limiter(settings: Settings) -> RateLimiter:
    """The fleet-wide Redis limiter when SIDECAR_REDIS_URL is set, else a local paced limiter."""
    if settings.redis_url:
        from sidecar.deliver.fleet import RedisLimiter  # noqa: PLC0415 - only deployments with Redis load it

        return RedisLimiter.from_settings(settings)
    return PacedLimiter(settings.max_requests_per_second)


def build_authenticator(settings: Settings) -> Authenticator:
    """OAuth for the keys in SIDECAR_OAUTH_CREDENTIALS_FILE (Basic for the others), else Basic for every key."""
    if settings.oauth_credentials_file is not None or settings.oauth_required:
        from sidecar.deliver.oauth import OAuthAuthenticator  # noqa: PLC0415 - only OAuth deployments load it

        return OAuthAuthenticator.from_settings(settings)
    return BasicAuthenticator()


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


class Sidecar:
    """The whole sidecar, in one process: ``await start()``, serve, ``await stop()``."""

    def __init__(self, settings: Settings, observers: Observers | None = None) -> None:
        self.settings = settings
        observers = observers or Observers()
        store: Store = MemoryStore() if settings.spool == "memory" else SqliteStore(settings.spool_dir)
        read_ahead = settings.spool_max_bytes if settings.spool == "memory" else settings.read_ahead_bytes
        self.spool = Spool(store, settings.spool_max_bytes, read_ahead)
        self.limiter = build_limiter(settings)
        self.authenticator = build_authenticator(settings)
        self.sender = HttpSender(
            {region: settings.endpoint(region) for region in Region}, self.authenticator, settings.request_timeout
        )
        policy = DeliveryPolicy(
            flush_interval=settings.flush_interval,
            batch_max_bytes=settings.batch_max_bytes,
            batch_max_events=settings.batch_max_events,
            read_ahead_bytes=read_ahead,
            max_in_flight=settings.max_in_flight,
            max_event_age=settings.max_event_age,
            parked_retry_interval=settings.parked_retry_interval,
            parked_dead_letter_after=settings.parked_dead_letter_after,
            backoff=Backoff(settings.retry_base_delay, settings.retry_max_delay),
        )
        self.driver = DeliveryDriver(
            self.spool, self.limiter, self.sender, policy, envelope_overhead, observers.delivery
        )
        intake = Intake(
            build_validators(settings),
            Enricher(settings.integration_name, settings.integration_version),
            self.authenticator,
        )
        self.servicer = SidecarServicer(intake, self.spool, self.driver, settings.default_region, observers.intake)
        self.health = health_aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self.port = 0
        self._started = False
        self._stopped = False

    async def start(self) -> None:
        """Open the spool (recovering what it holds), start delivery, then bind and serve gRPC."""
        if self._started:
            return
        self._started = True
        await self.spool.start()
        if self.spool.recovered:
            log.info("spool_recovered", events=self.spool.recovered, bytes=self.spool.pending_bytes)
        for stage in (self.authenticator, self.limiter, self.sender, self.driver):
            await stage.start()
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_BATCH_BYTES + 2**20),
                ("grpc.so_reuseport", 0),
            ]
        )
        pb_grpc.add_SidecarServiceServicer_to_server(self.servicer, server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        self.port = server.add_insecure_port(self.settings.listen)
        if self.port == 0 and not self.settings.listen.startswith("unix:"):
            raise SidecarError(f"cannot listen on {self.settings.listen} (SIDECAR_LISTEN): address in use?")
        await server.start()
        self._server = server
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "sidecar_started",
            listen=self.settings.listen,
            port=self.port,
            spool=self.settings.spool,
            integration=self.settings.integration_name,
            cap=self.settings.max_requests_per_second,
        )

    async def _set_health(self, status: Any) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, drain within ``grace`` seconds, keep the rest spooled; idempotent."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        grace = self.settings.shutdown_grace if grace is None else grace
        started = time.monotonic()
        self.servicer.accepting = False
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        delivered_before = self.driver.delivered
        await self.driver.drain(started + grace)
        await self.driver.stop()
        if self._server is not None:
            await self._server.stop(0.5)
        for stage in (self.sender, self.limiter, self.authenticator):
            await stage.stop()
        left = self.spool.pending_events
        await self.spool.stop()
        log.info(
            "sidecar_stopped",
            seconds=round(time.monotonic() - started, 3),
            delivered_while_draining=self.driver.delivered - delivered_before,
            delivered_total=self.driver.delivered,
            dead_lettered_total=self.driver.dead_lettered_total,
            left_in_spool=left,
            spool=self.settings.spool,
        )
