"""Batching helpers for high-volume producers: events are queued and sent with the ``Batch`` RPC.

A batch leaves when it holds ``max_events`` events, when its oldest event has waited ``max_delay`` seconds, on
:meth:`flush` and on close. Each event is converted when queued: it gets its message id (so :meth:`add` can return
it), and an event that cannot be sent at all (no write key, properties that are not JSON) raises from :meth:`add`.
The outcome of each event goes to ``on_result`` (rejections are logged by default); a batch that fails as a whole,
after the client's retries, goes to ``on_error`` (logged by default). ``max_queue`` bounds the events waiting:
:meth:`add` blocks while the queue is full, pushing back on the producer instead of growing without bound.

What an event costs the producer (the batcher's reason to exist is high volume): :meth:`add` encodes the event once,
straight to the bytes of its entry in the ``Batch`` request (``_wire``), and queues them with the event and its id; a
batch leaves as the concatenation of its entries. The sending side is woken only when it has something to do (the
first event of a batch starts its ``max_delay`` timer, a full batch, a flush, close), not per event. Handlers get the
events with their message ids filled in; the default ``on_result`` only looks at rejections, so for it the batcher
builds no result for accepted events (the response's counters say when there is none to look for).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

import grpc

from segment_sidecar_client._errors import SidecarError
from segment_sidecar_client._events import BatchResult, Event, all_accepted, batch_results, rejections
from segment_sidecar_client._proto import sidecar_pb2

if TYPE_CHECKING:
    from segment_sidecar_client._aio import AsyncClient
    from segment_sidecar_client._sync import Client

log = logging.getLogger("segment_sidecar_client")

DEFAULT_MAX_EVENTS = 500
DEFAULT_MAX_DELAY = 0.5
DEFAULT_MAX_QUEUE = 10_000

ResultHandler = Callable[[Event, BatchResult], None]
ErrorHandler = Callable[[list[Event], SidecarError], None]
Queued = tuple[Event, str, bytes]
"""A queued event: the event as given, its message id, its entry bytes."""


def log_rejection(event: Event, result: BatchResult) -> None:
    """The default ``on_result``: log rejected events at warning level."""
    if result.rejection is not None:
        log.warning(
            "event rejected: message_id=%s field=%s reason=%s",
            result.message_id,
            result.rejection.field,
            result.rejection.reason,
        )


def log_failure(events: list[Event], error: SidecarError) -> None:
    """The default ``on_error``: log a batch that failed as a whole."""
    log.error("batch of %d events failed: %s", len(events), error)


class Batcher:
    """Groups events into ``Batch`` calls on a background thread of a blocking :class:`Client`."""

    def __init__(
        self,
        client: Client,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_delay: float = DEFAULT_MAX_DELAY,
        max_queue: int = DEFAULT_MAX_QUEUE,
        on_result: ResultHandler = log_rejection,
        on_error: ErrorHandler = log_failure,
    ) -> None:
        if max_events < 1 or max_queue < max_events:
            raise ValueError("need 1 <= max_events <= max_queue")
        self._client = client
        self._max_events = max_events
        self._max_delay = max_delay
        self._max_queue = max_queue
        self._on_result = on_result
        self._on_error = on_error
        self._pending: list[Queued] = []
        self._oldest = 0.0
        self._in_flight = 0
        self._flush_requests = 0
        self._closed = False
        # add() takes the bare lock (cheaper than the condition's context manager) and notifies only on a change the
        # sender thread waits for.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name="segment-sidecar-batcher", daemon=True)
        self._thread.start()

    def __enter__(self) -> Batcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def add(self, event: Event) -> str:
        """Queue an event (blocking while the queue is full); returns its message id."""
        message_id, entry = self._client._encode(event)
        with self._lock:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if len(self._pending) >= self._max_queue:
                self._cond.wait_for(self._has_room)
            queue_up(self, (event, message_id, entry))
        return message_id

    def _has_room(self) -> bool:
        return len(self._pending) < self._max_queue or self._closed

    def flush(self) -> None:
        """Send everything queued now and wait until it has been sent (the sidecar accepted or refused it)."""
        with self._cond:
            self._flush_requests += 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._pending and not self._in_flight)
            self._flush_requests -= 1

    def close(self) -> None:
        """Send what is queued, then stop the thread. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _take(self) -> list[Queued] | None:
        """Wait for a batch to be due; None when closed and drained. Called with the lock held."""
        while True:
            if not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
                continue
            due = self._oldest + self._max_delay - time.monotonic()
            if len(self._pending) >= self._max_events or self._closed or self._flush_requests or due <= 0:
                chunk = self._pending[: self._max_events]
                del self._pending[: self._max_events]
                self._oldest = time.monotonic()
                self._in_flight = len(chunk)
                self._cond.notify_all()  # room in the queue for blocked producers
                return chunk
            self._cond.wait(due)

    def _run(self) -> None:
        while True:
            with self._cond:
                chunk = self._take()
            if chunk is None:
                return
            try:
                send(self._client, chunk, self._on_result, self._on_error)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()


def queue_up(batcher: Batcher | AsyncBatcher, item: Queued) -> None:
    """Append ``item`` to a batcher's queue, its condition held; wake the sender only when it has work.

    The first event of a batch starts the ``max_delay`` timer, and a full batch is due at once.
    """
    pending = batcher._pending
    pending.append(item)
    queued = len(pending)
    if queued == 1:
        batcher._oldest = time.monotonic()
        batcher._cond.notify_all()
    elif queued == batcher._max_events:
        batcher._cond.notify_all()


def unexpected(exc: Exception) -> SidecarError:
    """A failure that is not a gRPC status (a bug, a closed channel) as an error ``on_error`` can take."""
    return SidecarError(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")


def with_id(event: Event, message_id: str) -> Event:
    """The event as handlers see it: with the message id it was sent with (a copy, when it was made here)."""
    return event if event.message_id == message_id else dataclasses.replace(event, message_id=message_id)


def failed(chunk: list[Queued], error: SidecarError, on_error: ErrorHandler) -> None:
    """Hand a batch that failed as a whole to ``on_error``."""
    on_error([with_id(event, message_id) for event, message_id, _ in chunk], error)


def report(chunk: list[Queued], response: sidecar_pb2.BatchResponse, on_result: ResultHandler) -> None:
    """Hand each event's outcome to ``on_result``; to the default handler, which ignores the rest, only rejections."""
    if on_result is log_rejection:
        if all_accepted(len(chunk), response):
            return
        for index, result in rejections([message_id for _, message_id, _ in chunk], response):
            event, message_id, _ = chunk[index]
            log_rejection(with_id(event, message_id), result)
        return
    results = batch_results([message_id for _, message_id, _ in chunk], response)
    for (event, message_id, _), result in zip(chunk, results, strict=False):
        on_result(with_id(event, message_id), result)


def send(client: Client, chunk: list[Queued], on_result: ResultHandler, on_error: ErrorHandler) -> None:
    """Send one batch with a blocking client and report each outcome; never raises, so the thread lives on."""
    try:
        response = client._send_entries([entry for _, _, entry in chunk])
    except SidecarError as exc:
        failed(chunk, exc, on_error)
        return
    except Exception as exc:  # noqa: BLE001 - the batching thread must survive anything and report it
        failed(chunk, unexpected(exc), on_error)
        return
    report(chunk, response, on_result)


class AsyncBatcher:
    """Groups events into ``Batch`` calls on a task of an :class:`AsyncClient`; create it inside the event loop."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_delay: float = DEFAULT_MAX_DELAY,
        max_queue: int = DEFAULT_MAX_QUEUE,
        on_result: ResultHandler = log_rejection,
        on_error: ErrorHandler = log_failure,
    ) -> None:
        if max_events < 1 or max_queue < max_events:
            raise ValueError("need 1 <= max_events <= max_queue")
        self._client = client
        self._max_events = max_events
        self._max_delay = max_delay
        self._max_queue = max_queue
        self._on_result = on_result
        self._on_error = on_error
        self._pending: list[Queued] = []
        self._oldest = 0.0
        self._flush_requests = 0
        self._closed = False
        self._cond = asyncio.Condition()
        self._in_flight = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsyncBatcher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def add(self, event: Event) -> str:
        """Queue an event (waiting while the queue is full); returns its message id."""
        message_id, entry = self._client._encode(event)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="segment-sidecar-batcher")
        async with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if len(self._pending) >= self._max_queue:
                await self._cond.wait_for(self._has_room)
            queue_up(self, (event, message_id, entry))
        return message_id

    def _has_room(self) -> bool:
        return len(self._pending) < self._max_queue or self._closed

    async def flush(self) -> None:
        """Send everything queued now and wait until it has been sent."""
        async with self._cond:
            self._flush_requests += 1
            self._cond.notify_all()
            try:
                await self._cond.wait_for(lambda: not self._pending and not self._in_flight)
            finally:
                self._flush_requests -= 1

    async def aclose(self) -> None:
        """Send what is queued, then stop the task. Idempotent."""
        async with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._task is not None:
            await self._task

    async def _take(self) -> list[Queued] | None:
        """Wait for a batch to be due; None when closed and drained. Called with the lock held."""
        while True:
            if not self._pending:
                if self._closed:
                    return None
                await self._cond.wait()
                continue
            due = self._oldest + self._max_delay - time.monotonic()
            if len(self._pending) >= self._max_events or self._closed or self._flush_requests or due <= 0:
                chunk = self._pending[: self._max_events]
                del self._pending[: self._max_events]
                self._oldest = time.monotonic()
                self._in_flight = len(chunk)
                self._cond.notify_all()
                return chunk
            # Condition.wait re-acquires the lock even when the timeout cancels it, so the loop keeps its invariant.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._cond.wait(), due)

    async def _run(self) -> None:
        while True:
            async with self._cond:
                chunk = await self._take()
            if chunk is None:
                return
            try:
                try:
                    response = await self._client._send_entries([entry for _, _, entry in chunk])
                except SidecarError as exc:
                    failed(chunk, exc, self._on_error)
                except Exception as exc:  # noqa: BLE001 - the batching task must survive anything and report it
                    failed(chunk, unexpected(exc), self._on_error)
                else:
                    report(chunk, response, self._on_result)
            finally:
                async with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()
