"""The sidecar's exceptions: a small tree, each leaf mapped to exactly one gRPC status code.

::

    SidecarError                      INTERNAL            (anything not classified below)
    ├── InvalidEvent                  INVALID_ARGUMENT    (carries field violations)
    ├── CapacityExhausted             RESOURCE_EXHAUSTED  (carries a retry delay: the spool is full)
    │   ├── ServerBusy                RESOURCE_EXHAUSTED  (too many calls at once)
    │   └── TooManyWatches            RESOURCE_EXHAUSTED  (too many outcome watches open)
    ├── ShuttingDown                  UNAVAILABLE
    ├── CredentialsMissing            FAILED_PRECONDITION
    ├── FlushTimeout                  DEADLINE_EXCEEDED   (carries the pending counts)
    ├── CursorExpired                 OUT_OF_RANGE        (an outcome cursor older than the log's window)
    └── SpoolFailure                  UNAVAILABLE         (the disk failed; the event was not acknowledged)

    ConfigError                       (start-up only: exit status 2, never reaches a caller)

The mapping onto ``grpc.StatusCode`` lives at the gRPC edge (``sidecar.api.status``) so that nothing else imports
grpc; a test walks every subclass here and fails on one without a code. This module imports nothing from the package.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One field that broke one rule: ``field`` is a path such as ``properties.revenue``."""

    field: str
    description: str


class SidecarError(Exception):
    """Base of every error the sidecar reports to a caller; its message is written for a person."""


class InvalidEvent(SidecarError):
    """The event breaks a rule; it was not accepted and retrying it unchanged will fail again."""

    def __init__(self, message: str, violations: tuple[FieldViolation, ...] = ()) -> None:
        super().__init__(message)
        self.violations = violations

    @classmethod
    def single(cls, field: str, description: str) -> InvalidEvent:
        """An error about one field, whose message is the field's description."""
        return cls(f"{field}: {description}", (FieldViolation(field, description),))


class CapacityExhausted(SidecarError):
    """The spool is full; the caller should retry after ``retry_after`` seconds with the same message ids."""

    quota_subject = "spool"
    """The ``google.rpc.QuotaFailure`` subject: which limit was reached."""
    quota_description = "SIDECAR_SPOOL_MAX_BYTES reached"
    """The ``google.rpc.QuotaFailure`` description."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerBusy(CapacityExhausted):
    """More calls are in progress than the server takes at once; the caller should retry after ``retry_after``."""

    quota_subject = "concurrent_calls"
    quota_description = "the sidecar's limit of calls in progress at once was reached"


class TooManyWatches(CapacityExhausted):
    """As many ``WatchOutcomes`` streams are open as the sidecar keeps; the caller should retry after
    ``retry_after``, from its last cursor."""

    quota_subject = "outcome_watches"
    quota_description = "the sidecar's limit of open outcome watches (SIDECAR_MAX_OUTCOME_WATCHES) was reached"


class ShuttingDown(SidecarError):
    """The sidecar is draining and accepts no new events; the caller should retry against a live instance."""


class SpoolFailure(SidecarError):
    """Writing to the spool failed (disk full, I/O error); the event was not acknowledged."""


class CredentialsMissing(SidecarError):
    """The write key needs OAuth credentials (``SIDECAR_OAUTH_REQUIRED``) and the sidecar has none for it."""


class FlushTimeout(SidecarError):
    """A flush reached its deadline with events still pending."""

    def __init__(self, message: str, pending: int) -> None:
        super().__init__(message)
        self.pending = pending


class CursorExpired(SidecarError):
    """WatchOutcomes was asked to resume after a record the outcome log no longer holds (pruned by age or bytes);
    ``oldest_cursor`` is the cursor of the oldest record still held (empty when the log is empty)."""

    def __init__(self, message: str, oldest_cursor: str) -> None:
        super().__init__(message)
        self.oldest_cursor = oldest_cursor


class ConfigError(Exception):
    """The environment holds invalid settings; ``problems`` names every bad variable with what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems
