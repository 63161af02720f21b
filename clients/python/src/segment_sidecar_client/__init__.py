"""A Python client for segment-sidecar: send Segment Spec calls to the local sidecar over gRPC.

::

    from segment_sidecar_client import Client

    with Client(write_key="customer-write-key") as sidecar:
        sidecar.track(user_id="user-1", event="Email Opened", properties={"email_id": "e-1"})

:class:`Client` blocks, :class:`AsyncClient` is for asyncio; :class:`Batcher` and :class:`AsyncBatcher` group
high-volume events into ``Batch`` calls. Both clients make each event's message id before the first attempt, retry
UNAVAILABLE and RESOURCE_EXHAUSTED (honouring the server's RetryInfo) until the call's deadline, and raise
:class:`InvalidEventError` with the field violations of a rejected event. The address is ``SIDECAR_ADDRESS`` or
``127.0.0.1:50051`` unless given; ``unix:/path`` is a unix socket.

What became of events: ``get_write_key_status``, ``list_write_keys`` / ``iter_write_keys``, ``get_message_outcome``,
and ``watch_outcomes``, an iterator over the outcome log that resumes from its last cursor by itself.
"""

from segment_sidecar_client._address import DEFAULT_ADDRESS, resolve_address
from segment_sidecar_client._aio import AsyncClient
from segment_sidecar_client._batcher import AsyncBatcher, Batcher
from segment_sidecar_client._errors import CursorExpiredError, FieldViolation, InvalidEventError, SidecarError
from segment_sidecar_client._events import (
    Ack,
    Alias,
    BatchResult,
    Event,
    EventWarning,
    FlushResult,
    Group,
    Identify,
    Page,
    Region,
    Rejection,
    Screen,
    Track,
    to_struct,
)
from segment_sidecar_client._ids import new_message_id
from segment_sidecar_client._outcomes import (
    MessageOutcome,
    MessageState,
    Outcome,
    OutcomeKind,
    WriteKeyPage,
    WriteKeyState,
    WriteKeyStatus,
)
from segment_sidecar_client._retry import DEFAULT_FLUSH_TIMEOUT, DEFAULT_TIMEOUT, NO_RETRY, RetryPolicy
from segment_sidecar_client._sync import Client

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_FLUSH_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "NO_RETRY",
    "Ack",
    "Alias",
    "AsyncBatcher",
    "AsyncClient",
    "BatchResult",
    "Batcher",
    "Client",
    "CursorExpiredError",
    "Event",
    "EventWarning",
    "FieldViolation",
    "FlushResult",
    "Group",
    "Identify",
    "InvalidEventError",
    "MessageOutcome",
    "MessageState",
    "Outcome",
    "OutcomeKind",
    "Page",
    "Region",
    "Rejection",
    "RetryPolicy",
    "Screen",
    "SidecarError",
    "Track",
    "WriteKeyPage",
    "WriteKeyState",
    "WriteKeyStatus",
    "new_message_id",
    "resolve_address",
    "to_struct",
]
