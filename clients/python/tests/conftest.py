"""Shared fixtures: a real ``grpc.aio`` server that speaks the sidecar's API and fails on request.

The server is not the sidecar: it answers each call from a script (fail with this status and these details, then
succeed), so that retry, deadline and typed-error behaviour can be tested exactly over a real socket.
"""

from __future__ import annotations

import asyncio
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


HEADERS_HEAD_START = 0.2
"""Seconds a scripted drop waits after the stream's headers, so that they reach the client before the drop does."""


@dataclass
class ScriptedSidecar(sidecar_pb2_grpc.SidecarServiceServicer):
    """Fails the next calls as scripted, then accepts; records every request it saw with the time it arrived."""

    failures: list[Failure] = field(default_factory=list)
    seen: list[tuple[str, Any, float]] = field(default_factory=list)
    reject_event_named: str = "Bad Event"
    outcome_log: list[Any] = field(default_factory=list)
    """The outcome records ``WatchOutcomes`` serves, in order; each one's cursor is its position."""
    watch_drops: list[int] = field(default_factory=list)
    """Per watch connection, in order: send this many records, then fail with UNAVAILABLE (a dropped stream)."""
    watch_failure: Failure | None = None
    """When set, every watch connection fails with it at once (OUT_OF_RANGE...)."""
    start_cursor_header: bool = False
    """Whether each watch connection names its start cursor in an ``outcome-start-cursor`` header, as the sidecar
    does (``c0`` before the first record); off, it plays a sidecar that sends none."""
    written_on_drop: list[Any] = field(default_factory=list)
    """Records appended to ``outcome_log`` when a watch connection drops: written while the watcher was away."""
    key_pages: list[list[str]] = field(default_factory=list)
    """The fingerprints ``ListWriteKeys`` answers, page by page (the page token is the next page's index)."""
    batch_counts: bool = False
    """Whether ``Batch`` fills the response's ``accepted`` and ``rejected`` counters, as the sidecar does."""
    batch_gate: asyncio.Event | None = None
    """When set, each ``Batch`` call waits for this event before it answers (a sidecar slow to answer)."""
    batches_held: int = 0
    """How many ``Batch`` calls have arrived at the gate."""

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
        if self.batch_gate is not None:
            self.batches_held += 1
            await self.batch_gate.wait()
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
        response = sidecar_pb2.BatchResponse(results=results)
        if self.batch_counts:
            response.rejected = sum(1 for result in results if result.HasField("rejected"))
            response.accepted = len(results) - response.rejected
        return await self._answer("Batch", request, context, response)

    async def Flush(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Answer a flush with zero counters."""
        return await self._answer("Flush", request, context, sidecar_pb2.FlushResponse())

    async def WatchOutcomes(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """Stream the records after ``after_cursor``; drop the stream as scripted, else wait for more for ever.

        With ``from_now`` and no cursor, the stream starts after the last record.
        """
        self.seen.append(("WatchOutcomes", request, time.monotonic()))
        if self.watch_failure is not None:
            await context.abort(
                self.watch_failure.code, self.watch_failure.message, trailing_metadata=self.watch_failure.trailers()
            )
        cursors = [record.cursor for record in self.outcome_log]
        if request.after_cursor:
            start = 0 if request.after_cursor == "c0" else cursors.index(request.after_cursor) + 1
        else:
            start = len(cursors) if request.from_now else 0
        if self.start_cursor_header:
            await context.send_initial_metadata((("outcome-start-cursor", cursors[start - 1] if start else "c0"),))
        drop_after = self.watch_drops.pop(0) if self.watch_drops else None
        for sent, record in enumerate(self.outcome_log[start:]):
            if sent == drop_after:
                break
            yield sidecar_pb2.WatchOutcomesResponse(outcome=record)
        if drop_after is not None:
            self.outcome_log.extend(self.written_on_drop)
            self.written_on_drop = []
            if self.start_cursor_header:
                # gRPC core completes send_initial_metadata once the transport has the headers, not once they are
                # written: an abort right after it can reach the client first, as a response without headers (seen
                # once in CI under load). A sidecar drops a stream long after its headers; so does this one.
                await asyncio.sleep(HEADERS_HEAD_START)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scripted drop")
        await asyncio.Event().wait()  # a live stream with nothing new: the client ends it

    async def GetWriteKeyStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """A REFUSED status for the key, its fingerprint being the key reversed."""
        status = sidecar_pb2.WriteKeyStatus(
            fingerprint=request.write_key[::-1], region=request.region, state=sidecar_pb2.WRITE_KEY_STATE_REFUSED,
            last_status=401, last_response="invalid write key", dead_letters_by_reason={"parked_too_long": 2},
        )  # fmt: skip
        status.state_since.FromSeconds(1_800_000_000)
        return await self._answer(
            "GetWriteKeyStatus", request, context, sidecar_pb2.GetWriteKeyStatusResponse(status=status)
        )

    async def ListWriteKeys(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """One scripted page of fingerprints, with the next page's index as its token."""
        index = int(request.page_token or 0)
        token = str(index + 1) if index + 1 < len(self.key_pages) else ""
        statuses = [sidecar_pb2.WriteKeyStatus(fingerprint=f) for f in self.key_pages[index]]
        response = sidecar_pb2.ListWriteKeysResponse(write_keys=statuses, next_page_token=token)
        return await self._answer("ListWriteKeys", request, context, response)

    async def GetMessageOutcome(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        """The record of the message in ``outcome_log`` (DELIVERED), or UNKNOWN."""
        for record in self.outcome_log:
            if record.message_id == request.message_id:
                response = sidecar_pb2.GetMessageOutcomeResponse(
                    state=sidecar_pb2.MESSAGE_STATE_DELIVERED, outcome=record,
                    write_key_fingerprint=record.write_key_fingerprint, region=record.region,
                )  # fmt: skip
                return await self._answer("GetMessageOutcome", request, context, response)
        response = sidecar_pb2.GetMessageOutcomeResponse(state=sidecar_pb2.MESSAGE_STATE_UNKNOWN)
        return await self._answer("GetMessageOutcome", request, context, response)


def delivered(count: int) -> list[Any]:
    """``count`` DELIVERED records, cursors ``c1``.. and message ids ``m1``.. ."""
    return [
        sidecar_pb2.Outcome(
            cursor=f"c{i}",
            kind=sidecar_pb2.OUTCOME_KIND_DELIVERED,
            write_key_fingerprint="fp",
            region=sidecar_pb2.REGION_US,
            message_id=f"m{i}",
            segment_status=200,
        )
        for i in range(1, count + 1)
    ]


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
