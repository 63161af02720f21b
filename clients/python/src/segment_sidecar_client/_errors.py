"""The client's exceptions, one per way a call can end badly.

::

    SidecarError                  any failed call; ``code`` is the gRPC status code
    ├── InvalidEventError         INVALID_ARGUMENT: the event breaks a rule, with its field violations; never retried
    └── CursorExpiredError        OUT_OF_RANGE: a watch's cursor is older than the outcome log's window; carries the
                                  oldest cursor still held

UNAVAILABLE, RESOURCE_EXHAUSTED and CANCELLED (when the caller did not cancel) are retried with the same message id
(see :mod:`segment_sidecar_client._retry`); when the attempts or the deadline run out, the last of them is raised as a
:class:`SidecarError` with ``retryable`` true and ``attempts`` set.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

RETRYABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED}
)
"""Codes a call is retried on. CANCELLED is gRPC's answer to a server overloaded before it took the call; a call the
caller cancelled (or whose client was closed) is never retried, whatever its code."""


@dataclass(frozen=True)
class FieldViolation:
    """A field that broke a rule: ``field`` is a path such as ``user_id`` or ``properties.revenue``."""

    field: str
    description: str


class SidecarError(Exception):
    """A call the sidecar refused or could not answer; ``code`` is the gRPC status, ``message`` its detail."""

    def __init__(
        self, code: grpc.StatusCode, message: str, *, retry_after: float | None = None, attempts: int = 1
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.attempts = attempts
        """Attempts made before this error was raised, the first included."""

    @property
    def retryable(self) -> bool:
        """Whether sending the same call again (same message id) later may succeed."""
        return self.code in RETRYABLE_CODES


class InvalidEventError(SidecarError):
    """The sidecar rejected the event (INVALID_ARGUMENT); ``violations`` says which fields and why."""

    def __init__(self, message: str, violations: tuple[FieldViolation, ...] = ()) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)
        self.violations = violations

    @property
    def field(self) -> str | None:
        """The field of the first violation, or None when the sidecar named none."""
        return self.violations[0].field if self.violations else None


class CursorExpiredError(SidecarError):
    """A watch's ``after_cursor`` is older than the outcome log's window (OUT_OF_RANGE); records were dropped.

    ``oldest_cursor`` is the oldest cursor the sidecar still holds, when it said so (None otherwise): watch again
    with ``after_cursor=""`` to read from it, knowing that what came before it is lost.
    """

    def __init__(self, message: str, oldest_cursor: str | None = None) -> None:
        super().__init__(grpc.StatusCode.OUT_OF_RANGE, message)
        self.oldest_cursor = oldest_cursor
