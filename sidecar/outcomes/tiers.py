"""Two tiers: an edge's final records come from its gateways' outcome logs, not from "forwarded".

When a gateway accepts an edge's batch, the edge removes the events from its spool and keeps their message ids in
``forwarded`` (same transaction; :mod:`sidecar.spool.outcome_rows`), with no final record yet. For each gateway of
``SIDECAR_FORWARD_TO`` (``host:port`` entries), a supervised task here follows that gateway's ``WatchOutcomes``
(final kinds only, with the edge's forward token), from the cursor the edge stored for it. Records come in chunks
(up to :data:`CHUNK` records, or what arrived before the stream paused): one store job per chunk turns those that
settle a forwarded event into the edge's own final records (``DELIVERED``, ``DEAD_LETTERED`` with the gateway's
reason and Segment's answer, ``EXPIRED``), deletes their ``forwarded`` rows and stores the gateway's cursor, in one
transaction: a crash of the edge repeats nothing and loses nothing. A gateway's stream carries every edge's records;
each edge keeps only its own (by message id, fingerprint and gateway).

A cursor the gateway refuses (``OUT_OF_RANGE``: the edge was away longer than the gateway's window; or
``INVALID_ARGUMENT``: a replaced gateway spool) restarts from the gateway's oldest record, logged as
``gateway_outcomes_reset``; events whose records were pruned on the gateway stay in ``forwarded``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Sequence
from typing import Protocol

import grpc
import structlog

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.outcomes.records import OutcomeKind, OutcomeRecord
from sidecar.tasks import Supervision, Supervisor

log = structlog.get_logger("sidecar.outcomes")

CHUNK = 500
"""Records settled in one transaction at most."""
PAUSE = 0.05
"""A chunk is settled once no record arrived for this long (seconds)."""
RETRY_SECONDS = 1.0
"""Wait before reconnecting to a gateway that failed."""
_FINAL = [pb.OUTCOME_KIND_DELIVERED, pb.OUTCOME_KIND_DEAD_LETTERED, pb.OUTCOME_KIND_EXPIRED]
_REGIONS = {pb.REGION_US: "us", pb.REGION_EU: "eu"}


class ForwardedSink(Protocol):
    """Where settled records go: the edge's spool."""

    async def settle_forwarded(self, gateway: str, records: Sequence[OutcomeRecord], cursor: str) -> None:
        """Store the records and the cursor in one transaction."""

    async def gateway_cursor(self, gateway: str) -> str:
        """The stored cursor of ``gateway``'s stream."""


def _record(outcome: pb.Outcome) -> OutcomeRecord:
    return OutcomeRecord(
        OutcomeKind(outcome.kind),
        outcome.time.ToNanoseconds() / 1e9,
        outcome.write_key_fingerprint,
        _REGIONS.get(outcome.region, ""),
        outcome.message_id,
        outcome.dead_letter_reason,
        outcome.segment_status,
        outcome.segment_response,
    )


class GatewayFollower:
    """Follows every gateway's outcome stream (see the module docstring); start/stop idempotent."""

    def __init__(
        self, gateways: Sequence[str], token: str | None, sink: ForwardedSink, supervision: Supervision | None = None
    ) -> None:
        self._gateways = [g for g in gateways if not g.startswith("dns:")]
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._sink = sink
        self._supervisor = Supervisor("tiers", supervision=supervision)
        if len(self._gateways) < len(gateways):
            log.warning(
                "gateway_outcomes_unfollowed",
                detail="dns:/// gateway lists are not followed yet: list the gateways as host:port",
            )

    async def start(self) -> None:
        """One supervised follower per gateway."""
        await self._supervisor.start()
        for gateway in self._gateways:
            self._supervisor.keep(f"outcomes_of_{gateway}", lambda g=gateway: self._follow(g))  # type: ignore[misc]

    async def stop(self) -> None:
        """Stop following (what was settled is stored)."""
        await self._supervisor.stop()

    async def _follow(self, gateway: str) -> None:
        unit = f"outcomes_of_{gateway}"
        while True:
            cursor = await self._sink.gateway_cursor(gateway)
            try:
                async with grpc.aio.insecure_channel(gateway) as channel:
                    stub = pb_grpc.SidecarServiceStub(channel)  # type: ignore[no-untyped-call]
                    request = pb.WatchOutcomesRequest(after_cursor=cursor, kinds=_FINAL)
                    stream = stub.WatchOutcomes(request, metadata=self._metadata)
                    self._supervisor.report(unit, None)
                    await self._drain(gateway, stream)
            except grpc.aio.AioRpcError as error:
                if error.code() in (grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.INVALID_ARGUMENT):
                    log.warning("gateway_outcomes_reset", gateway=gateway, reason=error.details())
                    await self._sink.settle_forwarded(gateway, [], "")
                    continue
                log.info("gateway_outcomes_unreachable", gateway=gateway, code=error.code().name)
            await asyncio.sleep(RETRY_SECONDS)

    async def _drain(self, gateway: str, stream: AsyncIterable[pb.WatchOutcomesResponse]) -> None:
        """Settle the stream's records in chunks until it ends."""
        iterator = aiter(stream)
        chunk: list[OutcomeRecord] = []
        cursor = ""
        while True:
            timeout = PAUSE if chunk else None
            try:
                async with asyncio.timeout(timeout):
                    reply = await anext(iterator)
            except TimeoutError:
                reply = None
            except StopAsyncIteration:
                reply = None
                if not chunk:
                    return
            if reply is not None:
                if reply.outcome.kind in _FINAL:
                    chunk.append(_record(reply.outcome))
                cursor = reply.outcome.cursor
                if len(chunk) < CHUNK:
                    continue
            if cursor:
                await self._sink.settle_forwarded(gateway, chunk, cursor)
            chunk = []
