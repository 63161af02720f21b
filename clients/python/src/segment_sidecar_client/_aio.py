"""The asyncio client: the blocking client's methods as coroutines, on a ``grpc.aio`` channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any

import grpc

from segment_sidecar_client._address import CHANNEL_OPTIONS, resolve_address
from segment_sidecar_client._events import (
    Ack,
    Alias,
    BatchResult,
    Event,
    FlushResult,
    Group,
    Identify,
    ObjectValue,
    Page,
    Region,
    Screen,
    Timestamp,
    Track,
    ack_of,
    batch_results,
    flush_result,
    kind,
    to_request,
    with_message_id,
)
from segment_sidecar_client._outcomes import (
    MessageOutcome,
    Outcome,
    OutcomeKind,
    Reconnects,
    WriteKeyPage,
    WriteKeyState,
    WriteKeyStatus,
    message_outcome_of,
    outcome_of,
    page_of,
    start_cursor,
    status_of,
    watch_request,
)
from segment_sidecar_client._proto import sidecar_pb2, sidecar_pb2_grpc
from segment_sidecar_client._retry import DEFAULT_FLUSH_TIMEOUT, DEFAULT_TIMEOUT, Attempts, RetryPolicy
from segment_sidecar_client._status import cancelled_by_close, closed_in_flight, translate
from segment_sidecar_client._wire import Encoder, entry_of

_METHOD = {
    "track": "Track",
    "identify": "Identify",
    "page": "Page",
    "screen": "Screen",
    "group": "Group",
    "alias": "Alias",
}


class AsyncClient:
    """An asyncio client of the sidecar; share one per event loop (it holds one ``grpc.aio`` channel).

    ``write_key`` and ``region`` are defaults for calls that do not name their own. ``timeout`` bounds each call,
    all retries included; ``retry`` says how UNAVAILABLE, RESOURCE_EXHAUSTED and CANCELLED (not caused by the
    caller) are retried (:mod:`segment_sidecar_client._retry`). Use it as an async
    context manager, or await :meth:`close`.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        write_key: str | None = None,
        region: Region | str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        retry: RetryPolicy | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.address = resolve_address(address)
        self.write_key = write_key
        self.region = region
        self.timeout = timeout
        self.flush_timeout = flush_timeout
        self.retry = retry or RetryPolicy()
        self._closed = False
        self._owns_channel = channel is None
        self._channel = channel or grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        self._stub = sidecar_pb2_grpc.SidecarServiceStub(self._channel)  # type: ignore[no-untyped-call]
        # Batch with a body of pre-encoded entries (_wire): no request serializer, the bytes go out as they are.
        self._batch = self._channel.unary_unary(
            "/segment.sidecar.v1.SidecarService/Batch",
            request_serializer=None,
            response_deserializer=sidecar_pb2.BatchResponse.FromString,
        )
        self._encoder = Encoder()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (unless it was passed in). Idempotent."""
        self._closed = True
        if self._owns_channel:
            await self._channel.close(None)

    async def _invoke(self, call: Any, request: Any, timeout: float | None) -> Any:
        """Call ``call`` (a method of the stub), retrying retryable failures until the deadline; translate the error."""
        attempts = Attempts(self.retry, self.timeout if timeout is None else timeout)
        while True:
            try:
                return await call(request, timeout=attempts.start())
            except asyncio.CancelledError:
                if not cancelled_by_close(self._closed):
                    raise
                raise closed_in_flight() from None
            except grpc.RpcError as exc:
                error = translate(exc)
                delay = None if self._closed else attempts.wait_before_next(error)
                if delay is None:
                    raise attempts.gave_up(error, self.address) from None
                await asyncio.sleep(delay)
                # A call whose client was closed meanwhile was cancelled by its caller: it ends with its last error.
                if self._closed:
                    raise attempts.gave_up(error, self.address) from None

    async def send(self, event: Event, *, timeout: float | None = None) -> Ack:
        """Send one event of any type; returns its :class:`Ack` or raises a :class:`SidecarError`."""
        event = with_message_id(event)
        request = to_request(event, self.write_key, self.region)
        return ack_of(await self._invoke(getattr(self._stub, _METHOD[kind(event)]), request, timeout))

    async def batch(self, events: Iterable[Event], *, timeout: float | None = None) -> list[BatchResult]:
        """Send events of mixed types in one call; one result per event, in order.

        An invalid event is rejected alone (its result says why); a capacity or shutdown failure fails the whole
        call, which is retried whole with the same message ids.
        """
        encoded = [self._encode(event) for event in events]
        response = await self._send_entries([entry for _, entry in encoded], timeout)
        return batch_results([message_id for message_id, _ in encoded], response)

    def prepare(self, event: Event) -> Any:
        """The request message for ``event``: the client's write key and region filled in, a message id made.

        Raises ValueError or TypeError at once for an event that cannot be sent (no write key, an object that is not
        JSON). The batching helpers encode each event when it is queued, with the same checks, so such errors reach
        the producer.
        """
        return to_request(with_message_id(event), self.write_key, self.region)

    async def batch_requests(self, requests: list[Any], *, timeout: float | None = None) -> list[BatchResult]:
        """Send prepared requests (:meth:`prepare`) in one ``Batch`` call; one result per request, in order."""
        response = await self._send_entries([entry_of(r) for r in requests], timeout)
        return batch_results([request.message_id for request in requests], response)

    def _encode(self, event: Event) -> tuple[str, bytes]:
        """The event's message id and its ``BatchRequest`` entry (``_wire``), for the batching helpers.

        Raises ValueError or TypeError at once for an event that cannot be sent, as :meth:`prepare` does.
        """
        return self._encoder.encode(event, self.write_key, self.region)

    async def _send_entries(self, entries: list[bytes], timeout: float | None = None) -> sidecar_pb2.BatchResponse:
        """One ``Batch`` call whose body is the given entries, retried as any call; the sidecar's response."""
        response: sidecar_pb2.BatchResponse = await self._invoke(self._batch, b"".join(entries), timeout)
        return response

    async def flush(self, *, timeout: float | None = None) -> FlushResult:
        """Wait until the sidecar has delivered (or given up on) everything accepted before this call."""
        response = await self._invoke(
            self._stub.Flush, sidecar_pb2.FlushRequest(), self.flush_timeout if timeout is None else timeout
        )
        return flush_result(response)

    async def track(
        self,
        *,
        user_id: str = "",
        event: str,
        properties: ObjectValue | None = None,
        anonymous_id: str = "",
        message_id: str = "",
        write_key: str | None = None,
        region: Region | str | None = None,
        timestamp: Timestamp | None = None,
        context: ObjectValue | None = None,
        integrations: ObjectValue | None = None,
        timeout: float | None = None,
    ) -> Ack:
        """Record that the user performed ``event``."""
        return await self.send(
            Track(
                user_id=user_id, event=event, properties=properties, anonymous_id=anonymous_id,
                message_id=message_id, write_key=write_key, region=region, timestamp=timestamp, context=context,
                integrations=integrations,
            ),
            timeout=timeout,
        )  # fmt: skip

    async def identify(
        self,
        *,
        user_id: str = "",
        traits: ObjectValue | None = None,
        anonymous_id: str = "",
        message_id: str = "",
        write_key: str | None = None,
        region: Region | str | None = None,
        timestamp: Timestamp | None = None,
        context: ObjectValue | None = None,
        integrations: ObjectValue | None = None,
        timeout: float | None = None,
    ) -> Ack:
        """Tie the user to ``traits``."""
        return await self.send(
            Identify(
                user_id=user_id, traits=traits, anonymous_id=anonymous_id, message_id=message_id,
                write_key=write_key, region=region, timestamp=timestamp, context=context, integrations=integrations,
            ),
            timeout=timeout,
        )  # fmt: skip

    async def page(
        self,
        *,
        user_id: str = "",
        name: str = "",
        category: str = "",
        properties: ObjectValue | None = None,
        anonymous_id: str = "",
        message_id: str = "",
        write_key: str | None = None,
        region: Region | str | None = None,
        timestamp: Timestamp | None = None,
        context: ObjectValue | None = None,
        integrations: ObjectValue | None = None,
        timeout: float | None = None,
    ) -> Ack:
        """Record a web page view."""
        return await self.send(
            Page(
                user_id=user_id, name=name, category=category, properties=properties, anonymous_id=anonymous_id,
                message_id=message_id, write_key=write_key, region=region, timestamp=timestamp, context=context,
                integrations=integrations,
            ),
            timeout=timeout,
        )  # fmt: skip

    async def screen(
        self,
        *,
        user_id: str = "",
        name: str = "",
        properties: ObjectValue | None = None,
        anonymous_id: str = "",
        message_id: str = "",
        write_key: str | None = None,
        region: Region | str | None = None,
        timestamp: Timestamp | None = None,
        context: ObjectValue | None = None,
        integrations: ObjectValue | None = None,
        timeout: float | None = None,
    ) -> Ack:
        """Record a mobile screen view."""
        return await self.send(
            Screen(
                user_id=user_id, name=name, properties=properties, anonymous_id=anonymous_id, message_id=message_id,
                write_key=write_key, region=region, timestamp=timestamp, context=context, integrations=integrations,
            ),
            timeout=timeout,
        )  # fmt: skip

    async def group(
        self,
        *,
        user_id: str = "",
        group_id: str,
        traits: ObjectValue | None = None,
        anonymous_id: str = "",
        message_id: str = "",
        write_key: str | None = None,
        region: Region | str | None = None,
        timestamp: Timestamp | None = None,
        context: ObjectValue | None = None,
        integrations: ObjectValue | None = None,
        timeout: float | None = None,
    ) -> Ack:
        """Associate the user with the group ``group_id``."""
        return await self.send(
            Group(
                user_id=user_id, group_id=group_id, traits=traits, anonymous_id=anonymous_id, message_id=message_id,
                write_key=write_key, region=region, timestamp=timestamp, context=context, integrations=integrations,
            ),
            timeout=timeout,
        )  # fmt: skip

    async def alias(
        self,
        *,
        user_id: str,
        previous_id: str,
        anonymous_id: str = "",
        message_id: str = "",
        write_key: str | None = None,
        region: Region | str | None = None,
        timestamp: Timestamp | None = None,
        context: ObjectValue | None = None,
        integrations: ObjectValue | None = None,
        timeout: float | None = None,
    ) -> Ack:
        """Merge ``previous_id`` into ``user_id``."""
        return await self.send(
            Alias(
                user_id=user_id, previous_id=previous_id, anonymous_id=anonymous_id, message_id=message_id,
                write_key=write_key, region=region, timestamp=timestamp, context=context, integrations=integrations,
            ),
            timeout=timeout,
        )  # fmt: skip

    async def get_write_key_status(
        self, write_key: str | None = None, region: Region | str | None = None, *, timeout: float | None = None
    ) -> WriteKeyStatus:
        """What the sidecar knows of ``write_key`` (default: the client's) in ``region``: state, backlog..."""
        key = write_key if write_key is not None else self.write_key
        if not key:
            raise ValueError("get_write_key_status needs a write key (none given, and the client has none)")
        request = sidecar_pb2.GetWriteKeyStatusRequest(
            write_key=key, region=f"REGION_{Region.parse(region if region is not None else self.region).value}"
        )
        return status_of((await self._invoke(self._stub.GetWriteKeyStatus, request, timeout)).status)

    async def list_write_keys(
        self,
        *,
        state: WriteKeyState | str | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> WriteKeyPage:
        """One page of every write key's status, named by fingerprint; ``state`` keeps only keys in that state."""
        request = sidecar_pb2.ListWriteKeysRequest(
            page_size=page_size,
            page_token=page_token,
            state=f"WRITE_KEY_STATE_{WriteKeyState.parse(state).value}",
        )
        return page_of(await self._invoke(self._stub.ListWriteKeys, request, timeout))

    async def iter_write_keys(
        self, *, state: WriteKeyState | str | None = None, page_size: int = 0, timeout: float | None = None
    ) -> AsyncIterator[WriteKeyStatus]:
        """Every write key's status, page after page (each page one call, ``timeout`` bounding each)."""
        token = ""
        while True:
            page = await self.list_write_keys(state=state, page_size=page_size, page_token=token, timeout=timeout)
            for status in page.write_keys:
                yield status
            token = page.next_page_token
            if not token:
                return

    async def get_message_outcome(
        self, message_id: str, *, write_key: str = "", timeout: float | None = None
    ) -> MessageOutcome:
        """Where one event is: waiting, in flight, delivered, dead-lettered, expired, or unknown within the window."""
        request = sidecar_pb2.GetMessageOutcomeRequest(message_id=message_id, write_key=write_key)
        return message_outcome_of(await self._invoke(self._stub.GetMessageOutcome, request, timeout))

    async def watch_outcomes(
        self,
        *,
        after_cursor: str = "",
        write_keys: Iterable[str] = (),
        kinds: Iterable[OutcomeKind | str] = (),
        from_now: bool = False,
    ) -> AsyncIterator[Outcome]:
        """Follow the outcome log: every record after ``after_cursor`` (empty: the oldest held), then new ones.

        The stream resumes by itself: after UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED it did not cause, or a
        stream the sidecar ended (a restart, a dropped connection), it reconnects with the cursor of the last record
        it yielded, so nothing is missed and nothing comes twice. Before its first record it resumes from the cursor
        the sidecar said the stream started after (its ``outcome-start-cursor`` header), so a ``from_now`` or
        filtered watch lost early misses nothing written meanwhile. It reconnects for as long as you iterate, waiting
        as the retry policy says between tries (at most 2 s); stop by leaving the loop or cancelling the task.
        ``from_now`` starts after the newest record when there is no cursor yet. Raises
        :class:`CursorExpiredError` (with ``oldest_cursor``) when the cursor is older than the window, and
        :class:`SidecarError` for any other failure. Ends when the client is closed.
        """
        keys, wanted = tuple(write_keys), tuple(kinds)
        cursor = after_cursor
        reconnects = Reconnects(self.retry)
        while not self._closed:
            call = self._stub.WatchOutcomes(watch_request(cursor, keys, wanted, from_now))
            error = None
            try:
                if not cursor:  # a reconnect resumes where this stream started, not from_now again (older sidecars: "")
                    cursor = start_cursor(await call.initial_metadata())
                async for response in call:
                    outcome = outcome_of(response.outcome)
                    reconnects.received()
                    cursor = outcome.cursor
                    yield outcome
            except grpc.RpcError as exc:
                error = translate(exc)
            finally:
                call.cancel()
            if self._closed:
                return
            delay = reconnects.wait_after(error)
            if delay is None:
                assert error is not None  # wait_after only refuses an error
                raise error from None
            await asyncio.sleep(delay)


__all__ = ["AsyncClient"]
