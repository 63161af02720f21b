"""The gRPC servicer: decode, hand to the one downstream, answer. A call returns OK only once its events are durable.

The servicer knows one stage: :class:`~sidecar.api.downstream.Downstream` (validation, enrichment, the spool and
delivery live behind it, wired in ``sidecar/app.py``); it imports nothing from ``enrich/``, ``spool/``, ``delivery/`` or
``send/`` (a test keeps it so).

Errors become statuses in one place (:mod:`sidecar.api.status`); an unexpected exception is logged with its
traceback and answered ``INTERNAL`` with a plain message, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, Protocol, TypeVar, cast

import grpc
import structlog

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.api import outcomes as convert_outcomes
from sidecar.api.convert import batch_calls, to_call
from sidecar.api.downstream import Downstream
from sidecar.api.outcomes import OutcomesDownstream
from sidecar.api.places import Places
from sidecar.api.status import code_of, to_status
from sidecar.errors import FlushTimeout, InvalidEvent, ShuttingDown, SidecarError, TooManyWatches
from sidecar.model import CallType, Event, Region, Warning

log = structlog.get_logger("sidecar.api")

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 16 * 2**20
"""Limits of one Batch call: the gRPC server's receive limit is set from the byte figure."""
BATCH_SLICE_SECONDS = 0.002
"""How long a Batch checks events before it lets other calls run: checking 16 MiB of large Structs takes about half
a second, which without a pause would hold every other caller up that long. A small call needs several turns of the
event loop (its bytes, the spool's commit, the answer), so it waits about 15 slices: 2 ms keeps that near 30 ms, at
a cost of one loop turn per 2 ms of a Batch."""

Response = TypeVar("Response")


WATCH_RETRY_AFTER = 1.0
"""The retry delay (seconds) sent with a refusal for too many open outcome watches: a watch frees its place only
when its client goes, so a quick retry would find none."""
FLUSH_MARGIN_MIN = 0.05
"""Least time before a Flush's deadline that the sidecar answers it with its counts."""
FLUSH_MARGIN_MAX = 0.25
"""Most time before a Flush's deadline that the sidecar answers it with its counts."""


class IntakeObserver(Protocol):
    """Told what the edge accepts and rejects, for metrics and the debugger page."""

    def accepted(self, event: Event, call_type: CallType, warnings: Sequence[Warning]) -> None:
        """An event was spooled."""

    def rejected(self, call_type: CallType, write_key: str, error: SidecarError, detail: dict[str, Any]) -> None:
        """A call or batch event was refused."""


def _warnings(warnings: Sequence[Warning]) -> list[pb.Warning]:
    return [pb.Warning(code=w.code, field=w.field, message=w.message) for w in warnings]


async def _refuse(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> NoReturn:
    """Answer a call that raised ``error`` (called in its ``except`` block, so the log keeps the traceback): a
    SidecarError with its status, anything else INTERNAL with a plain message."""
    if isinstance(error, SidecarError):
        if not isinstance(error, InvalidEvent):
            log.warning("call_refused", code=code_of(error).name, reason=str(error))
        await cast(Any, context).abort_with_status(to_status(error))  # missing from grpc-stubs' aio context
    else:
        log.exception("internal_error")
        await context.abort(grpc.StatusCode.INTERNAL, "internal error in the sidecar; see its log")
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


class SidecarServicer(pb_grpc.SidecarServiceServicer):
    """Implements ``segment.sidecar.v1.SidecarService``."""

    def __init__(
        self,
        downstream: Downstream,
        default_region: Region,
        observers: Sequence[IntakeObserver] = (),
        outcomes: OutcomesDownstream | None = None,
        *,
        watch_places: Places,
    ) -> None:
        """``watch_places`` are the ``SIDECAR_MAX_OUTCOME_WATCHES`` places, one per open WatchOutcomes stream."""
        self._downstream = downstream
        self._outcomes = outcomes
        self._watch_places = watch_places
        self._default_region = default_region
        self._observers = tuple(observers)
        self.accepting = True

    def _check_accepting(self) -> None:
        if not self.accepting:
            raise ShuttingDown("the sidecar is shutting down; retry against another instance or after restart")

    async def _guard(
        self, context: grpc.aio.ServicerContext[Any, Any], work: Callable[[], Awaitable[Response]]
    ) -> Response:
        try:
            return await work()
        except Exception as error:  # noqa: BLE001 - _refuse answers every exception (cancellation is no Exception)
            await _refuse(context, error)

    async def _one(self, call_type: CallType, request: Any) -> tuple[Event, list[Warning]]:
        self._check_accepting()
        try:
            call = to_call(call_type, request, self._default_region, time.time())
            event, warnings = self._downstream.prepare(call)
        except SidecarError as error:
            for observer in self._observers:
                observer.rejected(call_type, request.write_key, error, {"event": getattr(request, "event", "")})
            raise
        await self._downstream.accept([event])
        for observer in self._observers:
            observer.accepted(event, call_type, warnings)
        return event, warnings

    async def _unary(
        self,
        call_type: CallType,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        response: Callable[..., Response],
    ) -> Response:
        # The per-call path of every unary event call: _guard's handling inline, without a closure and a coroutine.
        try:
            event, warnings = await self._one(call_type, request)
            return response(message_id=event.message_id, warnings=_warnings(warnings))
        except Exception as error:  # noqa: BLE001 - _refuse answers every exception (cancellation is no Exception)
            await _refuse(context, error)

    async def Track(self, request: pb.TrackRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.TrackResponse:
        """Accept a track call."""
        return await self._unary(CallType.TRACK, request, context, pb.TrackResponse)

    async def Identify(
        self, request: pb.IdentifyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.IdentifyResponse:
        """Accept an identify call."""
        return await self._unary(CallType.IDENTIFY, request, context, pb.IdentifyResponse)

    async def Page(self, request: pb.PageRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.PageResponse:
        """Accept a page call."""
        return await self._unary(CallType.PAGE, request, context, pb.PageResponse)

    async def Screen(self, request: pb.ScreenRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.ScreenResponse:
        """Accept a screen call."""
        return await self._unary(CallType.SCREEN, request, context, pb.ScreenResponse)

    async def Group(self, request: pb.GroupRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.GroupResponse:
        """Accept a group call."""
        return await self._unary(CallType.GROUP, request, context, pb.GroupResponse)

    async def Alias(self, request: pb.AliasRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.AliasResponse:
        """Accept an alias call."""
        return await self._unary(CallType.ALIAS, request, context, pb.AliasResponse)

    async def Batch(self, request: pb.BatchRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.BatchResponse:
        """Accept many events; each is validated on its own, all accepted ones share one spool commit."""

        async def work() -> pb.BatchResponse:
            self._check_accepting()
            if len(request.events) > MAX_BATCH_EVENTS:
                raise InvalidEvent.single(
                    "events", f"holds {len(request.events)} events; a Batch call takes at most {MAX_BATCH_EVENTS}"
                )
            # The per-event loop is the ingest hot path: results are added to the response in place
            # (``results.add``, no intermediate BatchResult objects), locals replace attribute lookups, and the
            # observers' bookkeeping is skipped when there are none.
            response = pb.BatchResponse()
            add_result = response.results.add
            prepare = self._downstream.prepare
            region = self._default_region
            observers = self._observers
            events: list[Event] = []
            accepted: list[tuple[Event, CallType, list[Warning]]] = []
            now = time.time()
            clock = time.perf_counter
            slice_ends = clock() + BATCH_SLICE_SECONDS
            for index, (call_type, inner, call) in enumerate(batch_calls(request.events, region, now)):
                if clock() > slice_ends:
                    await asyncio.sleep(0)
                    slice_ends = clock() + BATCH_SLICE_SECONDS
                if call_type is None or inner is None or call is None:  # all three or none: the event set no call
                    add_result(
                        rejected=pb.Rejection(
                            code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                            reason="the event has no call type set",
                            field_violations=[pb.FieldViolation(field=f"events[{index}]", description="set one call")],
                        )
                    )
                    continue
                try:
                    if isinstance(call, InvalidEvent):
                        raise call
                    event, warnings = prepare(call)
                except SidecarError as error:
                    violations = getattr(error, "violations", ())
                    add_result(
                        rejected=pb.Rejection(
                            code=code_of(error).value[0],
                            reason=str(error),
                            field_violations=[
                                pb.FieldViolation(field=v.field, description=v.description) for v in violations
                            ],
                        )
                    )
                    for observer in observers:
                        observer.rejected(call_type, inner.write_key, error, {"event": getattr(inner, "event", "")})
                    continue
                events.append(event)
                if warnings:
                    add_result(message_id=event.message_id, warnings=_warnings(warnings))
                else:
                    add_result(message_id=event.message_id)
                if observers:
                    accepted.append((event, call_type, warnings))
            await self._downstream.accept(events)
            for observer in observers:
                for event, call_type, warnings in accepted:
                    observer.accepted(event, call_type, warnings)
            response.accepted = len(events)
            response.rejected = len(request.events) - len(events)
            return response

        return await self._guard(context, work)

    async def Flush(self, request: pb.FlushRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.FlushResponse:
        """Wait for delivery of everything accepted so far, within the call's deadline."""

        async def work() -> pb.FlushResponse:
            remaining = context.time_remaining()
            # Answer a little before the deadline, so the caller gets the counts rather than a bare timeout: a tenth of
            # the time left (50 ms to 250 ms), which a busy event loop still meets.
            margin = min(FLUSH_MARGIN_MAX, max(FLUSH_MARGIN_MIN, remaining / 10)) if remaining is not None else 0.0
            timeout = max(0.0, remaining - margin) if remaining is not None else None
            try:
                result = await asyncio.wait_for(self._downstream.flush(), timeout=timeout)
            except TimeoutError:
                pending = self._downstream.pending_events
                waiting = (
                    f"{pending} events still waiting for delivery"
                    if pending
                    else "the events forwarded not yet confirmed delivered by the gateways"
                )
                raise FlushTimeout(
                    f"deadline reached with {waiting}; they stay spooled and will still be delivered", pending
                ) from None
            return pb.FlushResponse(
                delivered=result.delivered,
                dead_lettered=result.dead_lettered,
                parked=result.parked,
                parked_write_key_hashes=list(result.parked_hashes),
            )

        return await self._guard(context, work)

    # --- the outcome log and key status (the second downstream)

    def _outcome_log(self) -> OutcomesDownstream:
        if self._outcomes is None:
            raise SidecarError("this sidecar serves no outcome log")
        return self._outcomes

    async def GetWriteKeyStatus(
        self, request: pb.GetWriteKeyStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetWriteKeyStatusResponse:
        """What the sidecar knows of one write key in one region."""

        async def work() -> pb.GetWriteKeyStatusResponse:
            if not request.write_key:
                raise InvalidEvent.single("write_key", "is required")
            region = convert_outcomes.region_of(request.region, self._default_region)
            status = await self._outcome_log().key_status(request.write_key, region)
            return pb.GetWriteKeyStatusResponse(status=convert_outcomes.key_status(status))

        return await self._guard(context, work)

    async def ListWriteKeys(
        self, request: pb.ListWriteKeysRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListWriteKeysResponse:
        """One page of every key's status, by fingerprint (never the key)."""

        async def work() -> pb.ListWriteKeysResponse:
            page, token = await self._outcome_log().list_keys(request.page_size, request.page_token, request.state)
            return pb.ListWriteKeysResponse(
                write_keys=[convert_outcomes.key_status(s) for s in page], next_page_token=token
            )

        return await self._guard(context, work)

    async def GetMessageOutcome(
        self, request: pb.GetMessageOutcomeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetMessageOutcomeResponse:
        """Where one event is."""

        async def work() -> pb.GetMessageOutcomeResponse:
            log_ = self._outcome_log()
            found = await log_.message_outcome(request.message_id, request.write_key)
            cursor = "" if found.record is None else log_.cursor_of(found.record)
            return convert_outcomes.message_outcome(found, cursor)

        return await self._guard(context, work)

    async def WatchOutcomes(
        self, request: pb.WatchOutcomesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """The outcome log from a cursor, then live. The response headers name the cursor the stream starts after
        (``outcome-start-cursor``). Each record is written with ``context.write``, which waits while the client's
        flow-control window is full: a slow client holds its watcher, never the sidecar."""

        async def work() -> None:
            log_ = self._outcome_log()
            # Counted here, not by gRPC's own admission of calls, which cannot tell a watch that lasts hours from a
            # call that lasts a millisecond: watches at their limit must leave the event calls their places.
            places = self._watch_places
            if not places.take():
                raise TooManyWatches(
                    f"the sidecar has {places.limit} outcome watches open, its limit "
                    f"(SIDECAR_MAX_OUTCOME_WATCHES); watch from fewer places, or retry after {WATCH_RETRY_AFTER:g} s "
                    "from your last cursor",
                    retry_after=WATCH_RETRY_AFTER,
                )
            try:
                start, watch = await log_.watch(
                    request.after_cursor, list(request.write_keys), list(request.kinds), request.from_now
                )
                async with contextlib.aclosing(watch) as records:  # a client gone ends its watcher at once
                    # Sent before waiting for a record: a watch may see none for long (from_now, narrow filters), and
                    # a client that loses it meanwhile needs this cursor to resume without a gap.
                    await context.send_initial_metadata(((convert_outcomes.START_CURSOR_HEADER, start),))
                    async for record in records:
                        await context.write(
                            pb.WatchOutcomesResponse(outcome=convert_outcomes.outcome(record, log_.cursor_of(record)))
                        )
            finally:
                places.give_back()

        await self._guard(context, work)
