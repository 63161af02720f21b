"""The one table from the sidecar's exceptions to gRPC status codes, with google.rpc details.

Only this module (and the servicer) imports grpc. ``INVALID_ARGUMENT`` carries ``google.rpc.BadRequest`` field
violations, ``RESOURCE_EXHAUSTED`` carries ``google.rpc.RetryInfo`` (and a ``QuotaFailure`` naming the spool limit),
so that clients can act on them without parsing messages.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sidecar.errors import (
    CapacityExhausted,
    CredentialsMissing,
    CursorExpired,
    FlushTimeout,
    InvalidEvent,
    ServerBusy,
    ShuttingDown,
    SidecarError,
    SpoolFailure,
    TooManyWatches,
)

STATUS_CODES: dict[type[SidecarError], grpc.StatusCode] = {
    SidecarError: grpc.StatusCode.INTERNAL,
    InvalidEvent: grpc.StatusCode.INVALID_ARGUMENT,
    CapacityExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ServerBusy: grpc.StatusCode.RESOURCE_EXHAUSTED,
    TooManyWatches: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    SpoolFailure: grpc.StatusCode.UNAVAILABLE,
    CredentialsMissing: grpc.StatusCode.FAILED_PRECONDITION,
    FlushTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    CursorExpired: grpc.StatusCode.OUT_OF_RANGE,
}


def code_of(error: SidecarError) -> grpc.StatusCode:
    """The status code of an error: its own class's entry (every class has one; a test checks)."""
    return STATUS_CODES[type(error)]


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def bad_request(error: InvalidEvent) -> error_details_pb2.BadRequest:
    """The field violations of an invalid event as google.rpc.BadRequest."""
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ]
    )


def to_status(error: SidecarError) -> grpc.Status:
    """A rich gRPC status for an error, ready for ``context.abort_with_status``."""
    code = code_of(error)
    details: list[any_pb2.Any] = []
    if isinstance(error, InvalidEvent):
        details.append(_pack(bad_request(error)))
    elif isinstance(error, CapacityExhausted):
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
        details.append(
            _pack(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=error.quota_subject, description=error.quota_description
                        )
                    ]
                )
            )
        )
    elif isinstance(error, CursorExpired):
        # The oldest cursor held, where a client can read it without parsing the message.
        details.append(
            _pack(
                error_details_pb2.ErrorInfo(
                    reason="CURSOR_EXPIRED",
                    domain="segment.sidecar.v1",
                    metadata={"oldest_cursor": error.oldest_cursor},
                )
            )
        )
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=str(error), details=details)
    return rpc_status.to_status(status)
