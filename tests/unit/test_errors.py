"""Every error class maps onto exactly one gRPC status code, and rich details travel with the status."""

from __future__ import annotations

import inspect

import grpc
from google.rpc import error_details_pb2, status_pb2

from sidecar import errors
from sidecar.api.status import STATUS_CODES, to_status


def _error_classes() -> list[type[errors.SidecarError]]:
    return [obj for _, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, errors.SidecarError)]


def test_every_error_class_has_its_own_status_code() -> None:
    """A new error class without an entry in the status table fails here."""
    for cls in _error_classes():
        assert cls in STATUS_CODES, f"{cls.__name__} has no gRPC status code"


def test_invalid_event_carries_field_violations() -> None:
    """INVALID_ARGUMENT carries google.rpc.BadRequest naming the field."""
    status = to_status(errors.InvalidEvent.single("user_id", "is required"))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    parsed = status_pb2.Status.FromString(details)
    request = error_details_pb2.BadRequest()
    assert parsed.details[0].Unpack(request)
    assert [(v.field, v.description) for v in request.field_violations] == [("user_id", "is required")]


def test_capacity_carries_retry_info() -> None:
    """RESOURCE_EXHAUSTED carries google.rpc.RetryInfo with the delay."""
    status = to_status(errors.CapacityExhausted("full", retry_after=1.5))
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    parsed = status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"])
    info = error_details_pb2.RetryInfo()
    assert parsed.details[0].Unpack(info)
    assert info.retry_delay.seconds == 1 and info.retry_delay.nanos == 500_000_000
