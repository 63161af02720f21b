"""Decoding a failed call: its status code, message and ``google.rpc.Status`` details, into a client exception."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from segment_sidecar_client._errors import CursorExpiredError, FieldViolation, InvalidEventError, SidecarError

STATUS_DETAILS_KEY = "grpc-status-details-bin"
PUSHBACK_KEY = "grpc-retry-pushback-ms"
"""gRPC's own header for a server's retry delay, in milliseconds (honoured like a ``RetryInfo``)."""


def rich_status(metadata: Any) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` carried in trailing metadata, or None when absent or unreadable."""
    for key, value in metadata or ():
        if key == STATUS_DETAILS_KEY:
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except Exception:  # noqa: BLE001 - a garbled trailer must not hide the status code itself
                return None
            return status
    return None


def retry_after(status: status_pb2.Status | None) -> float | None:
    """The delay a ``google.rpc.RetryInfo`` detail asks for, in seconds."""
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


def pushback(metadata: Any) -> float | None:
    """The delay a ``grpc-retry-pushback-ms`` trailer asks for, in seconds, or None when absent or unreadable."""
    for key, value in metadata or ():
        if key == PUSHBACK_KEY:
            try:
                return max(0.0, int(value) / 1000)
            except (TypeError, ValueError):
                return None
    return None


def violations(status: status_pb2.Status | None) -> tuple[FieldViolation, ...]:
    """The field violations of every ``google.rpc.BadRequest`` detail, in order."""
    if status is None:
        return ()
    found: list[FieldViolation] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
    return tuple(found)


OLDEST_CURSOR_KEY = "oldest_cursor"
"""The ``google.rpc.ErrorInfo`` metadata key of an OUT_OF_RANGE answer that names the oldest cursor held."""


def oldest_cursor(status: status_pb2.Status | None) -> str | None:
    """The oldest cursor an OUT_OF_RANGE answer names, from its ``ErrorInfo`` detail's ``oldest_cursor``.

    None when the sidecar holds no record (the value is empty) or sent no such detail.
    """
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                if info.metadata.get(OLDEST_CURSOR_KEY):
                    return str(info.metadata[OLDEST_CURSOR_KEY])
    return None


def translate(error: Any) -> SidecarError:
    """The client exception for a failed call (a ``grpc.RpcError`` that is also a ``grpc.Call``, sync or aio)."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    trailers = error.trailing_metadata()
    status = rich_status(trailers)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidEventError(message, violations(status))
    if code == grpc.StatusCode.OUT_OF_RANGE:
        return CursorExpiredError(message, oldest_cursor(status))
    delays = [d for d in (retry_after(status), pushback(trailers)) if d is not None]
    return SidecarError(code, message, retry_after=max(delays) if delays else None)


def cancelled_by_close(closed: bool) -> bool:
    """Whether a CancelledError that reached a call of a client came from the client's ``close()`` (``closed``: it
    was closed), not from a cancellation of the caller's own task.

    Closing a ``grpc.aio`` channel cancels its calls in flight, and grpc.aio raises that in the awaiting task as a
    CancelledError, although nobody cancelled the task. From Python 3.11 a task says whether it is being cancelled;
    Python 3.10 cannot tell the two apart, so there the cancellation is raised as it came.
    """
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return closed and cancelling is not None and cancelling() == 0


def closed_in_flight() -> SidecarError:
    """The error of a call cut short by closing its client (never retried: the caller ended it)."""
    return SidecarError(grpc.StatusCode.CANCELLED, "the client was closed while the call was in flight")
