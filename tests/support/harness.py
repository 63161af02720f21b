"""Start real sidecars for tests, in-process or as a separate process, and read rich gRPC errors."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.app import Sidecar
from sidecar.collector.server import Collector
from sidecar.config import load

CTRL_C_REACHES_PYTHON = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
"""The start of a ``python -c`` child that a test stops with SIGINT: a shell's background job (``make test`` runs its
checks so) starts with SIGINT ignored, a child inherits that, and Python leaves an ignored SIGINT ignored."""


def python_module_with_ctrl_c(module: str, *args: str) -> list[str]:
    """The command line of ``python -m module args`` whose SIGINT raises KeyboardInterrupt however it was started."""
    run = f"import runpy; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    return [sys.executable, "-c", CTRL_C_REACHES_PYTHON + run, *args]


TEST_ENV = {
    "SIDECAR_FLUSH_INTERVAL": "100ms",
    "SIDECAR_INTEGRATION_NAME": "acme-mail",
    "SIDECAR_RETRY_BASE_DELAY": "50ms",
    "SIDECAR_RETRY_MAX_DELAY": "1s",
    "SIDECAR_LOG_FORMAT": "json",
    # /metrics is on 127.0.0.1:9464 by default; parallel test sidecars must not share it. Tests of it set a port 0.
    "SIDECAR_METRICS_LISTEN": "off",
}


@dataclass
class Collectors:
    """A US and an EU collector."""

    us: Collector
    eu: Collector

    def env(self) -> dict[str, str]:
        """The variables pointing a sidecar at these collectors."""
        return {"SIDECAR_ENDPOINT_US": self.us.url, "SIDECAR_ENDPOINT_EU": self.eu.url}


@dataclass
class SidecarUnderTest:
    """An in-process sidecar with a channel and stub to it."""

    app: Sidecar
    channel: grpc.aio.Channel
    stub: pb_grpc.SidecarServiceStub

    async def close(self) -> None:
        """Close the channel and stop the sidecar without waiting for delivery."""
        await self.channel.close()
        await self.app.stop(grace=0)


async def start_sidecar(collectors: Collectors, spool_dir: Path, env: dict[str, str]) -> SidecarUnderTest:
    """An in-process sidecar on a free loopback port with test timings, overridden by ``env``."""
    settings, _ = load(
        {**TEST_ENV, **collectors.env(), "SIDECAR_LISTEN": "127.0.0.1:0", "SIDECAR_SPOOL_DIR": str(spool_dir), **env}
    )
    app = Sidecar(settings)
    await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    return SidecarUnderTest(app, channel, pb_grpc.SidecarServiceStub(channel))


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """The google.rpc.BadRequest field violations a status carries, as (field, description)."""
    return [(v.field, v.description) for v in _details(error, error_details_pb2.BadRequest) for v in v.field_violations]


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The google.rpc.RetryInfo delay a status carries, in seconds."""
    for info in _details(error, error_details_pb2.RetryInfo):
        return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


def _details(error: grpc.aio.AioRpcError, kind: type) -> list:  # type: ignore[type-arg]
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if raw is None:
        return []
    status = status_pb2.Status.FromString(raw)
    found = []
    for detail in status.details:
        message = kind()
        if detail.Unpack(message):
            found.append(message)
    return found


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SidecarProcess:
    """A sidecar running as its own process (``python -m sidecar serve``), for kill and signal tests."""

    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    logs: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        """host:port of its gRPC API."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Spawn the process; :meth:`wait_ready` waits until it serves."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "serve"],
            env={**os.environ, **self.env, "SIDECAR_LISTEN": self.address},
            stdout=log,
            stderr=log,
        )
        log.close()

    async def wait_ready(self, timeout: float = 20.0) -> None:
        """Poll the health service until SERVING (the process needs a second or two to import and open its spool)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

        deadline = time.monotonic() + timeout
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.process is not None and self.process.poll() is None, self.read_log()
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"sidecar did not become ready:\n{self.read_log()}")
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def terminate(self) -> None:
        """SIGTERM: the graceful path."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end; return its exit status."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError("sidecar did not exit in time")
            await asyncio.sleep(0.05)
        return int(self.process.returncode)

    def read_log(self) -> str:
        """Everything the process logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ensure_stopped(self) -> None:
        """Kill the process if it still runs (test teardown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@asynccontextmanager
async def ready(process: SidecarProcess) -> AsyncIterator[SidecarProcess]:
    """Start ``process`` and wait until it serves; on exit, kill it if it still runs."""
    process.start()
    try:
        await process.wait_ready()
        yield process
    finally:
        process.ensure_stopped()


async def held_flush(stub: Any, metadata: tuple[tuple[str, str], ...] = ()) -> None:
    """A Flush that holds one of the sidecar's call places until cancelled (nothing can be delivered): sent again when
    it was itself refused because another call (a probe, a Track still finishing) held the place first."""
    while True:
        try:
            await stub.Flush(pb.FlushRequest(), metadata=metadata, timeout=30)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            await asyncio.sleep(0.02)
            continue
        return
