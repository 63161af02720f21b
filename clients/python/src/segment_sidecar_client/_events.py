"""The six Spec calls as typed values, and their conversion into request messages.

Object fields (``properties``, ``traits``, ``context``, ``integrations``) take a ``dict`` (any mapping), sent as the
``*_json`` bytes of a JSON object; a dataclass instance, sent the same way from its fields; or a
``google.protobuf.Struct`` (see :func:`to_struct`), sent as the Struct field. Integers stay integers on the JSON path;
in a Struct they travel as doubles and the sidecar turns whole numbers back into integers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from google.protobuf import struct_pb2, timestamp_pb2

from segment_sidecar_client._errors import FieldViolation
from segment_sidecar_client._ids import new_message_id
from segment_sidecar_client._proto import sidecar_pb2

try:  # orjson is an optional extra ("fast"); the standard library encodes the same JSON more slowly.
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

ObjectValue = Mapping[str, Any] | struct_pb2.Struct | Any
"""A mapping, a dataclass instance or a Struct."""
Timestamp = dt.datetime | str | timestamp_pb2.Timestamp
"""An aware datetime (a naive one is taken as UTC), an RFC 3339 string or a Timestamp."""


class Region(str, enum.Enum):
    """The Segment region of the customer's workspace."""

    UNSPECIFIED = "UNSPECIFIED"
    US = "US"
    EU = "EU"

    @classmethod
    def parse(cls, value: Region | str | None) -> Region:
        """Accept a Region, ``"us"``/``"US"``, ``"eu"``/``"EU"``, ``"unspecified"`` or None."""
        if value is None:
            return cls.UNSPECIFIED
        if isinstance(value, Region):
            return value
        try:
            return cls(value.upper().removeprefix("REGION_"))
        except ValueError:
            raise ValueError(f"unknown region {value!r}: expected US, EU or UNSPECIFIED") from None


@dataclass(frozen=True)
class EventWarning:
    """A finding that did not stop the event, such as a Spec property with the wrong type."""

    code: str
    field: str
    message: str


@dataclass(frozen=True)
class Ack:
    """The sidecar accepted (durably spooled) the event under ``message_id``."""

    message_id: str
    warnings: tuple[EventWarning, ...] = ()


@dataclass(frozen=True)
class Rejection:
    """Why an event of a batch was refused; ``code`` is the gRPC status number (3 is INVALID_ARGUMENT)."""

    code: int
    reason: str
    violations: tuple[FieldViolation, ...] = ()

    @property
    def field(self) -> str | None:
        """The field of the first violation, or None."""
        return self.violations[0].field if self.violations else None


@dataclass(frozen=True)
class BatchResult:
    """The outcome of one event of a batch: accepted (``rejection`` is None) or rejected."""

    message_id: str
    rejection: Rejection | None = None
    warnings: tuple[EventWarning, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the event was accepted."""
        return self.rejection is None


@dataclass(frozen=True)
class FlushResult:
    """What the sidecar reports after a flush (counters since it started, and parked write keys)."""

    delivered: int
    dead_lettered: int
    parked: int
    parked_write_key_hashes: tuple[str, ...] = ()


_E = TypeVar("_E")


def _direct_init(cls: type[_E]) -> type[_E]:
    """Give a frozen, keyword-only dataclass an ``__init__`` that writes its fields straight into ``__dict__``.

    The ``__init__`` that ``dataclass`` generates for a frozen class sets each field through
    ``object.__setattr__`` (around 1 us for a Track's ten fields); a producer builds one event per call, so that was a
    tenth of the client's CPU per event. This one takes the same keyword arguments with the same defaults and makes
    the same instance in a third of the time; the class stays frozen (assignment still raises). It is generated the
    way ``dataclass`` generates its own, from the fields, so a new field needs no change here.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__") or any(f.default is dataclasses.MISSING or not f.kw_only for f in fields):
        raise TypeError(f"{cls.__name__}: only keyword-only fields with plain defaults can be set directly")
    defaults = {f"_default_{f.name}": f.default for f in fields}
    signature = ", ".join(f"{f.name}=_default_{f.name}" for f in fields)
    body = "".join(f"    values[{f.name!r}] = {f.name}\n" for f in fields)
    source = f"def __init__(self, *, {signature}):\n    values = self.__dict__\n{body}"
    namespace: dict[str, Any] = dict(defaults)
    exec(source, namespace)  # noqa: S102 - code generated from the class's own field names, as dataclass does
    init = namespace["__init__"]
    init.__module__ = cls.__module__
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = dict(cls.__init__.__annotations__)
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


@dataclass(frozen=True, kw_only=True)
class _Common:
    """Fields every call has; ``write_key`` and ``region`` default to the client's."""

    user_id: str = ""
    anonymous_id: str = ""
    message_id: str = ""
    write_key: str | None = None
    region: Region | str | None = None
    timestamp: Timestamp | None = None
    context: ObjectValue | None = None
    integrations: ObjectValue | None = None


@_direct_init
@dataclass(frozen=True, kw_only=True)
class Track(_Common):
    """A track call: the user performed ``event``."""

    event: str = ""
    properties: ObjectValue | None = None


@_direct_init
@dataclass(frozen=True, kw_only=True)
class Identify(_Common):
    """An identify call: the user has ``traits``."""

    traits: ObjectValue | None = None


@_direct_init
@dataclass(frozen=True, kw_only=True)
class Page(_Common):
    """A page call: the user viewed web page ``name``."""

    name: str = ""
    category: str = ""
    properties: ObjectValue | None = None


@_direct_init
@dataclass(frozen=True, kw_only=True)
class Screen(_Common):
    """A screen call: the user viewed app screen ``name``."""

    name: str = ""
    properties: ObjectValue | None = None


@_direct_init
@dataclass(frozen=True, kw_only=True)
class Group(_Common):
    """A group call: the user belongs to ``group_id``."""

    group_id: str = ""
    traits: ObjectValue | None = None


@_direct_init
@dataclass(frozen=True, kw_only=True)
class Alias(_Common):
    """An alias call: ``previous_id`` is now ``user_id``."""

    previous_id: str = ""


Event = Track | Identify | Page | Screen | Group | Alias
"""Any of the six calls."""

_KIND = {Track: "track", Identify: "identify", Page: "page", Screen: "screen", Group: "group", Alias: "alias"}
_REQUEST = {
    Track: sidecar_pb2.TrackRequest,
    Identify: sidecar_pb2.IdentifyRequest,
    Page: sidecar_pb2.PageRequest,
    Screen: sidecar_pb2.ScreenRequest,
    Group: sidecar_pb2.GroupRequest,
    Alias: sidecar_pb2.AliasRequest,
}
_OBJECT_FIELDS = ("context", "integrations", "properties", "traits")
_STRING_FIELDS = ("user_id", "anonymous_id", "event", "name", "category", "group_id", "previous_id")


def kind(event: Event) -> str:
    """The call's name: ``track``, ``identify``, ``page``, ``screen``, ``group`` or ``alias``."""
    return _KIND[type(event)]


def _default(value: Any) -> Any:
    """JSON for the values the standard encoder does not know."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json_bytes(value: Mapping[str, Any] | Any) -> bytes:
    """Encode a mapping or a dataclass instance as the bytes of a JSON object."""
    if type(value) is not dict:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a dict, a dataclass instance or a Struct, not {type(value).__name__}")
    if orjson is not None:
        try:
            # Without OPT_NON_STR_KEYS orjson takes its fast path; the option is only needed for keys that are not
            # strings (which orjson refuses without it), and gives the same bytes for string keys.
            data: bytes = orjson.dumps(value, default=_default)
        except TypeError:
            data = orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
        return data
    return json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def to_struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    """A ``google.protobuf.Struct`` holding ``value`` (for callers who send Structs rather than JSON bytes)."""
    struct = struct_pb2.Struct()
    struct.update(json.loads(to_json_bytes(value)))
    return struct


def to_timestamp(value: Timestamp) -> timestamp_pb2.Timestamp:
    """A ``google.protobuf.Timestamp`` from a datetime (naive is UTC), an RFC 3339 string or a Timestamp."""
    if isinstance(value, timestamp_pb2.Timestamp):
        return value
    stamp = timestamp_pb2.Timestamp()
    if isinstance(value, str):
        stamp.FromJsonString(value)
    else:
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        stamp.FromDatetime(value)
    return stamp


def with_message_id(event: Event) -> Event:
    """The event itself if it has a message id, else a copy with a new one."""
    return event if event.message_id else dataclasses.replace(event, message_id=new_message_id())


def to_request(event: Event, write_key: str | None, region: Region | str | None) -> Any:
    """The request message for ``event``; its ``write_key`` and ``region`` fall back to the given defaults.

    The event must already have a message id (:func:`with_message_id`).
    """
    key = event.write_key if event.write_key is not None else write_key
    if not key:
        raise ValueError("write_key is required: pass it to the call or to the client")
    request = _REQUEST[type(event)](
        write_key=key,
        region=f"REGION_{Region.parse(event.region if event.region is not None else region).value}",
        message_id=event.message_id,
    )
    for name in _STRING_FIELDS:
        value = getattr(event, name, "")
        if value:
            setattr(request, name, value)
    if event.timestamp is not None:
        request.timestamp.CopyFrom(to_timestamp(event.timestamp))
    for name in _OBJECT_FIELDS:
        value = getattr(event, name, None)
        if value is None:
            continue
        if isinstance(value, struct_pb2.Struct):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, f"{name}_json", to_json_bytes(value))
    return request


def to_batch_event(request: Any) -> sidecar_pb2.BatchEvent:
    """Wrap a request message in the ``BatchEvent`` oneof."""
    field = {
        sidecar_pb2.TrackRequest: "track",
        sidecar_pb2.IdentifyRequest: "identify",
        sidecar_pb2.PageRequest: "page",
        sidecar_pb2.ScreenRequest: "screen",
        sidecar_pb2.GroupRequest: "group",
        sidecar_pb2.AliasRequest: "alias",
    }[type(request)]
    return sidecar_pb2.BatchEvent(**{field: request})


def warnings_of(message: Any) -> tuple[EventWarning, ...]:
    """The warnings of a response or batch result."""
    return tuple(EventWarning(w.code, w.field, w.message) for w in message.warnings)


def ack_of(response: Any) -> Ack:
    """An :class:`Ack` from a unary call's response."""
    return Ack(response.message_id, warnings_of(response))


def batch_result(message_id: str, result: sidecar_pb2.BatchResult) -> BatchResult:
    """A :class:`BatchResult` from its message; ``message_id`` is the id the event was sent with."""
    warnings = warnings_of(result) if result.warnings else ()
    if result.WhichOneof("result") == "rejected":
        rejected = result.rejected
        violations = tuple(FieldViolation(v.field, v.description) for v in rejected.field_violations)
        return BatchResult(message_id, Rejection(rejected.code, rejected.reason, violations), warnings)
    return BatchResult(result.message_id or message_id, None, warnings)


def batch_results(message_ids: Sequence[str], response: sidecar_pb2.BatchResponse) -> list[BatchResult]:
    """One :class:`BatchResult` per event sent, in order; a rejected event keeps the message id it was sent with."""
    return [batch_result(m, result) for m, result in zip(message_ids, response.results, strict=False)]


def all_accepted(sent: int, response: sidecar_pb2.BatchResponse) -> bool:
    """Whether the response's counters say that every one of the ``sent`` events was accepted.

    The sidecar always fills ``accepted`` and ``rejected``; counters that do not add up to the results (a server
    that leaves them empty) say nothing, and the caller looks at every result.
    """
    return response.rejected == 0 and response.accepted == sent == len(response.results)


def rejections(message_ids: Sequence[str], response: sidecar_pb2.BatchResponse) -> list[tuple[int, BatchResult]]:
    """The rejected events of a batch: (position, result) each, in order."""
    return [
        (index, batch_result(message_ids[index], result))
        for index, result in enumerate(response.results)
        if index < len(message_ids) and result.WhichOneof("result") == "rejected"
    ]


def flush_result(response: sidecar_pb2.FlushResponse) -> FlushResult:
    """A :class:`FlushResult` from the flush response."""
    return FlushResult(
        response.delivered, response.dead_lettered, response.parked, tuple(response.parked_write_key_hashes)
    )
