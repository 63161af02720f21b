"""Shared fixtures: a real ``grpc.aio`` server that speaks the sidecar's API and fails on request.

The server is not the sidecar: it answers each call from a script (fail with this status and these details, then
succeed), so that retry, deadline and typed-error behaviour can be tested exactly over a real socket.
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

try:
    import segment_sidecar_client  # noqa: F401 - installed (pip install -e '.[test]')
except ImportError:  # run from the repository's venv without installing: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from segment_sidecar_client._proto import sidecar_pb2, sidecar_pb2_grpc


@dataclass
class Failure:
    """One scripted failure: the status code, its message and optional rich details."""

    code: grpc.StatusCode
    message: str = "scripted failure"
    retry_delay: float | None = None
    violations: tuple[tuple[str, str], ...] = ()
    pushback_ms: int | None = None

    def trailers(self) -> tuple[tuple[str, bytes | str], ...]:
        """The ``grpc-status-details-bin`` trailer holding a google.rpc.Status with the details."""
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        if self.retry_delay is not None:
            packed = any_pb2.Any()
            delay = duration_pb2.Duration()
            delay.FromTimedelta(datetime.timedelta(seconds=self.retry_delay))
            packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
            status.details.append(packed)
        if self.violations:
            packed = any_pb2.Any()
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in self.violations
                ]
            )
            packed.Pack(bad)
            status.details.append(packed)
        pushback = () if self.pushback_ms is None else (("grpc-retry-pushback-ms", str(self.pushback_ms)),)
        return (("grpc-status-details-bin", status.SerializeToString()), *pushback)


@dataclass
class ScriptedSidecar(sidecar_pb2_grpc.SidecarServiceServicer):
    """Fails the next calls as scripted, then accepts; records every request it saw with the time it arrived."""

    failures: list[Failure] = field(default_factory=list)
    seen: list[tuple[str, Any, float]] = field(default_factory=list)
    reject_event_named: str = "Bad Event"

    async def _answer(self, method: str, request: Any, context: grpc.aio.ServicerContext, response: Any) -> Any:
        self.seen.append((method, request, time.monotonic()))
        if self.failures:
            failure = self.failures.pop(0)
            await context.abort(failure.code, failure.message, trailing_metadata=failure.trailers())
        return response

    async def Track(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802 - gRPC names
        """Accept (or fail as scripted) a track call."""
        if request.event == self.reject_event_named:
            failure = Failure(grpc.StatusCode.INVALID_ARGUMENT, "event: not allowed", violations=(("event", "no"),))
            self.seen.append(("Track", request, 0.0))
            await context.abort(failure.code, failure.message, trailing_metadata=failure.trailers())
        return await self._answer("Track", request, context, sidecar_pb2.TrackResponse(message_id=request.message_id))

    async def Identify(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Accept (or fail as scripted) an identify call."""
        response = sidecar_pb2.IdentifyResponse(message_id=request.message_id)
        return await self._answer("Identify", request, context, response)

    async def Batch(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Accept every event of a batch except those named ``reject_event_named``."""
        results = []
        for item in request.events:
            inner = getattr(item, item.WhichOneof("event"))
            if getattr(inner, "event", None) == self.reject_event_named:
                rejection = sidecar_pb2.Rejection(
                    code=3, reason="event: not allowed", field_violations=[sidecar_pb2.FieldViolation(field="event")]
                )
                results.append(sidecar_pb2.BatchResult(rejected=rejection))
            else:
                results.append(sidecar_pb2.BatchResult(message_id=inner.message_id))
        return await self._answer("Batch", request, context, sidecar_pb2.BatchResponse(results=results))

    async def Flush(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Answer a flush with zero counters."""
        return await self._answer("Flush", request, context, sidecar_pb2.FlushResponse())


@dataclass
class Running:
    """A started scripted server: where it listens and its servicer."""

    address: str
    sidecar: ScriptedSidecar


async def _serve(bind: str) -> tuple[grpc.aio.Server, ScriptedSidecar, int]:
    server = grpc.aio.server()
    sidecar = ScriptedSidecar()
    sidecar_pb2_grpc.add_SidecarServiceServicer_to_server(sidecar, server)
    port = server.add_insecure_port(bind)
    await server.start()
    return server, sidecar, port


@pytest.fixture
async def scripted() -> AsyncIterator[Running]:
    """A scripted sidecar on a loopback TCP port."""
    server, sidecar, port = await _serve("127.0.0.1:0")
    try:
        yield Running(f"127.0.0.1:{port}", sidecar)
    finally:
        await server.stop(None)


@pytest.fixture
async def scripted_unix(tmp_path: Path) -> AsyncIterator[Running]:
    """A scripted sidecar on a unix socket."""
    address = f"unix:{tmp_path / 'sidecar.sock'}"
    server, sidecar, _ = await _serve(address)
    try:
        yield Running(address, sidecar)
    finally:
        await server.stop(None)
