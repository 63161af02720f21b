"""Batching helpers for high-volume producers: events are queued and sent with the ``Batch`` RPC.

A batch leaves when it holds ``max_events`` events, when its oldest event has waited ``max_delay`` seconds, on
:meth:`flush` and on close. Each event is converted when queued: it gets its message id (so :meth:`add` can return
it), and an event that cannot be sent at all (no write key, properties that are not JSON) raises from :meth:`add`.
The outcome of each event goes to ``on_result`` (rejections are logged by default); a batch that fails as a whole,
after the client's retries, goes to ``on_error`` (logged by default). ``max_queue`` bounds the events waiting:
:meth:`add` blocks while the queue is full, pushing back on the producer instead of growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc

from segment_sidecar_client._errors import SidecarError
from segment_sidecar_client._events import BatchResult, Event, with_message_id

if TYPE_CHECKING:
    from segment_sidecar_client._aio import AsyncClient
    from segment_sidecar_client._sync import Client

log = logging.getLogger("segment_sidecar_client")

DEFAULT_MAX_EVENTS = 500
DEFAULT_MAX_DELAY = 0.5
DEFAULT_MAX_QUEUE = 10_000

ResultHandler = Callable[[Event, BatchResult], None]
ErrorHandler = Callable[[list[Event], SidecarError], None]


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
        self._pending: list[tuple[Event, Any]] = []
        self._oldest = 0.0
        self._in_flight = 0
        self._flush_requests = 0
        self._closed = False
        self._cond = threading.Condition()
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
        event = with_message_id(event)
        item = (event, self._client.prepare(event))
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._cond.wait_for(lambda: len(self._pending) < self._max_queue or self._closed)
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.append(item)
            self._cond.notify_all()
        return event.message_id

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

    def _take(self) -> list[tuple[Event, Any]] | None:
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


def unexpected(exc: Exception) -> SidecarError:
    """A failure that is not a gRPC status (a bug, a closed channel) as an error ``on_error`` can take."""
    return SidecarError(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")


def send(client: Client, chunk: list[tuple[Event, Any]], on_result: ResultHandler, on_error: ErrorHandler) -> None:
    """Send one batch with a blocking client and report each outcome; never raises, so the thread lives on."""
    events = [event for event, _ in chunk]
    try:
        results = client.batch_requests([request for _, request in chunk])
    except SidecarError as exc:
        on_error(events, exc)
        return
    except Exception as exc:  # noqa: BLE001 - the batching thread must survive anything and report it
        on_error(events, unexpected(exc))
        return
    for event, result in zip(events, results, strict=False):
        on_result(event, result)


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
        self._pending: list[tuple[Event, Any]] = []
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
        event = with_message_id(event)
        item = (event, self._client.prepare(event))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="segment-sidecar-batcher")
        async with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            await self._cond.wait_for(lambda: len(self._pending) < self._max_queue or self._closed)
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.append(item)
            self._cond.notify_all()
        return event.message_id

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

    async def _take(self) -> list[tuple[Event, Any]] | None:
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
            events = [event for event, _ in chunk]
            try:
                try:
                    results = await self._client.batch_requests([request for _, request in chunk])
                except SidecarError as exc:
                    self._on_error(events, exc)
                except Exception as exc:  # noqa: BLE001 - the batching task must survive anything and report it
                    self._on_error(events, unexpected(exc))
                else:
                    for event, result in zip(events, results, strict=False):
                        self._on_result(event, result)
            finally:
                async with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()
