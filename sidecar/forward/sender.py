"""The forwarding sender: one batch -> one ``Batch`` call to the key's gateway -> an :data:`Outcome`.

It has the shape of :class:`~sidecar.delivery.interfaces.Sender` (``authorize`` needs nothing here; ``send`` never
raises for a network failure), so delivery's scheduler, retries and settling are the same in edge mode; only the
sender differs. An edge does not call Segment, so it paces nothing (the dispatcher gets no limiter) and needs no
Redis: the gateways do both.

===========================================  ==============================================================
the gateway answered                         outcome (what the edge does with the batch)
===========================================  ==============================================================
OK, every event accepted                     Delivered: the events leave the edge's spool
OK, some events rejected                     PartlyRejected: those dead-lettered with the gateway's reason,
                                             the others leave the spool
UNAVAILABLE, RESOURCE_EXHAUSTED,             Retry after max(backoff, RetryInfo); the gateway counts as
DEADLINE_EXCEEDED, unreachable, any other    failing, and past SIDECAR_FORWARD_FAILOVER_AFTER its keys move
                                             to their next gateway (:mod:`sidecar.forward.routing`)
UNAUTHENTICATED, PERMISSION_DENIED           Retry, logged as an error: SIDECAR_FORWARD_TOKEN is wrong;
                                             the events wait in the spool until it is fixed
INVALID_ARGUMENT for the whole call          Split: halve the batch (a size limit of the gateway)
no gateway known (empty DNS answer)          Retry
===========================================  ==============================================================
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
import structlog
from google.rpc import error_details_pb2, status_pb2

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.forward.convert import UnforwardableEvent, to_batch_event
from sidecar.forward.gateways import GatewayList
from sidecar.forward.metrics import EDGE_METADATA, ForwardMetrics
from sidecar.forward.routing import Router
from sidecar.model import Batch, write_key_hash
from sidecar.send.auth import Authorization
from sidecar.send.classify import MAX_SERVER_DELAY, Delivered, Outcome, PartlyRejected, Retry, Split
from sidecar.tasks import Supervision

log = structlog.get_logger("sidecar.forward")

MAX_MESSAGE_BYTES = 17 * 2**20
"""Send limit of the forwarding channels: a gateway receives up to its 16 MiB Batch limit plus framing."""
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # gRPC's defaults (1 s growing to 120 s) would keep a restarted gateway unused for minutes.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)
_AUTH_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})

CONFIRM_RETRY_SECONDS = 0.5
"""Pause before a gateway whose Flush failed (unreachable, restarting) is asked again, while an edge's Flush waits."""

_NO_CREDENTIALS = Authorization({})
"""A forwarded batch carries the edge's token in the channel's metadata, not credentials of its own."""


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The ``google.rpc.RetryInfo`` delay a status carries, in seconds (capped like Retry-After), if any."""
    metadata: Any = error.trailing_metadata() or ()
    for key, value in metadata:
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # noqa: BLE001 - a malformed detail is simply no delay
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                delay: float = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
                return min(MAX_SERVER_DELAY, delay)
    return None


class ForwardingSender:
    """Sends each batch to its key's gateway; see the module docstring."""

    def __init__(
        self,
        entries: tuple[str, ...],
        token: str | None,
        timeout: float,
        failover_after: float,
        resolve_interval: float,
        metrics: ForwardMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        supervision: Supervision | None = None,
    ) -> None:
        self.router = Router(failover_after, probe_interval=max(0.5, failover_after / 4))
        self._gateways = GatewayList(entries, resolve_interval, self._gateways_changed, supervision=supervision)
        self._metadata: tuple[tuple[str, str], ...] = ((EDGE_METADATA, "1"),)
        if token is not None:
            self._metadata += (("authorization", f"Bearer {token}"),)
        self._timeout = timeout
        self._metrics = metrics
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, pb_grpc.SidecarServiceStub] = {}
        self._retired: list[tuple[float, grpc.aio.Channel]] = []
        self._clock = clock

    def _gateways_changed(self, gateways: tuple[str, ...]) -> None:
        self.router.set_gateways(gateways)
        for address in gateways:
            if address not in self._channels:
                channel = grpc.aio.insecure_channel(address, options=list(CHANNEL_OPTIONS))
                self._channels[address] = channel
                self._stubs[address] = pb_grpc.SidecarServiceStub(channel)  # type: ignore[no-untyped-call]
        for address in [a for a in self._channels if a not in gateways]:
            # Closed once no call can still be using it (after one call timeout), by the next send, or at stop.
            self._retired.append((self._clock(), self._channels.pop(address)))
            del self._stubs[address]
        if self._metrics is not None:
            self._metrics.gateways_in_use(gateways)

    async def start(self) -> None:
        """Resolve the gateways and open a channel to each (connections are made on first use)."""
        await self._gateways.start()

    async def stop(self) -> None:
        """Stop re-resolving and close every channel; idempotent."""
        await self._gateways.stop()
        channels = [*self._channels.values(), *(channel for _, channel in self._retired)]
        self._channels.clear()
        self._stubs.clear()
        self._retired.clear()
        for channel in channels:
            await channel.close(None)

    async def confirm(self) -> None:
        """Wait until every gateway has delivered or dead-lettered what it holds (its own Flush), so that an edge's
        Flush means delivered, as a one-tier sidecar's does. A gateway that cannot answer is asked again after a
        pause; the caller's deadline ends the wait (Segment down: the edge's Flush answers DEADLINE_EXCEEDED)."""
        while True:
            stubs = list(self._stubs.items())
            results = await asyncio.gather(
                *(stub.Flush(pb.FlushRequest(), metadata=self._metadata) for _, stub in stubs), return_exceptions=True
            )
            failed = [
                address for (address, _), result in zip(stubs, results, strict=True) if isinstance(result, Exception)
            ]
            if not failed:
                return
            log.warning("gateway_flush_failed", gateways=failed)
            await asyncio.sleep(CONFIRM_RETRY_SECONDS)

    async def authorize(self, batch: Batch) -> Authorization:
        """Nothing to wait for: the channel carries the edge's token."""
        return _NO_CREDENTIALS

    async def send(self, batch: Batch, authorization: Authorization = _NO_CREDENTIALS) -> Outcome:
        """One ``Batch`` call to the key's gateway; never raises for a network or gRPC failure."""
        write_key, region = batch.shard
        now = self._clock()
        while self._retired and now - self._retired[0][0] > self._timeout:
            await self._retired.pop(0)[1].close(None)
        gateway = self.router.choose(write_key, region, now)
        stub = self._stubs.get(gateway) if gateway is not None else None
        if gateway is None or stub is None:
            return Retry("no gateway to forward to (SIDECAR_FORWARD_TO resolved to nothing yet)")
        unforwardable: list[tuple[int, str]] = []
        sent: list[int] = []
        request = pb.BatchRequest()
        for index, event in enumerate(batch.events):
            try:
                request.events.append(to_batch_event(event))
            except (UnforwardableEvent, ValueError) as exc:
                unforwardable.append((index, f"cannot be forwarded: {exc}"))
                continue
            sent.append(index)
        if not sent:
            return PartlyRejected(tuple(unforwardable))
        try:
            reply = await stub.Batch(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            return self._failed(batch, gateway, error)
        self.router.succeeded(gateway)
        if len(reply.results) != len(sent):
            self._count_failure(gateway, "bad_reply")
            return Retry(f"gateway {gateway} answered {len(reply.results)} results for {len(sent)} events")
        rejected = list(unforwardable)
        for position, result in enumerate(reply.results):
            if result.WhichOneof("result") == "rejected":
                rejected.append((sent[position], result.rejected.reason or "rejected by the gateway"))
        if self._metrics is not None:
            self._metrics.forwarded(gateway, len(sent) - (len(rejected) - len(unforwardable)))
        if rejected:
            return PartlyRejected(tuple(sorted(rejected)), gateway=gateway)
        return Delivered(200, gateway=gateway)

    def _failed(self, batch: Batch, gateway: str, error: grpc.aio.AioRpcError) -> Outcome:
        code = error.code()
        self._count_failure(gateway, code.name.lower())
        reason = f"gateway {gateway}: {code.name}: {(error.details() or '')[:200]}"
        if code is grpc.StatusCode.INVALID_ARGUMENT and len(batch.events) > 1:
            return Split(reason, 0)
        if code in _AUTH_CODES:
            log.error(
                "forward_unauthenticated",
                gateway=gateway,
                write_key_hash=write_key_hash(batch.shard[0]),
                hint="SIDECAR_FORWARD_TOKEN must equal the gateways' SIDECAR_AUTH_TOKEN",
            )
        self.router.failed(gateway, self._clock())
        return Retry(reason, retry_delay(error))

    def _count_failure(self, gateway: str, code: str) -> None:
        if self._metrics is not None:
            self._metrics.failed(gateway, code)
