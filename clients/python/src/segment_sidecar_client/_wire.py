"""Events as protobuf wire bytes, encoded once when they are queued, and batches as the concatenation of them.

A ``Batch`` call's body is a ``BatchRequest``; on the wire (protobuf's encoding, fields in number order) that is::

    BatchRequest = entry*                 entry = 0x0a varint(len(event)) event            (events = 1, repeated)
    event        = member varint(len(request)) request                                      (BatchEvent's oneof)
    request      = 0x0a varint(len(write_key)) write_key   [0x10 region]                    (fields 1 and 2)
                   field*                 field = key varint(len(value)) value              (fields 3 and up)

``member`` is the key of the oneof member (track = 1 ... alias = 6) and ``key`` is ``number << 3 | 2`` as a varint.
So :class:`Encoder` turns an event into its ``entry`` bytes when the batcher queues it, and a batch leaves as
``b"".join(entries)`` through a stub without request serializer: nothing is built or encoded twice,
and no protobuf message exists per event. The bytes are those ``to_request`` and ``SerializeToString`` give (the
tests compare them for every call type and field); strings travel as UTF-8, objects as the ``*_json`` bytes of their
JSON (or as the ``Struct`` field for a ``google.protobuf.Struct``), a timestamp as its ``Timestamp`` message.

The field layout of each request comes from the generated descriptors, so a field added to the proto and to the
event's dataclass is encoded without a change here (a proto field the dataclass lacks is never sent, as before); a
field of a type this module does not know fails at import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor

from segment_sidecar_client._events import (
    Alias,
    Event,
    Group,
    Identify,
    Page,
    Region,
    Screen,
    Track,
    to_batch_event,
    to_json_bytes,
    to_timestamp,
)
from segment_sidecar_client._ids import message_ids
from segment_sidecar_client._proto import sidecar_pb2

_LENGTH_DELIMITED = 2
_VARINT = 0
_SMALL = tuple(bytes((n,)) for n in range(128))
"""The varints of 0 to 127: one byte each."""
_REMEMBERED = 1 << 14
_VARINTS: dict[int, bytes] = dict(enumerate(_SMALL))
"""Varints below 16,384 (one or two bytes) as they are first made: a dictionary lookup costs a quarter of making one,
and the encoder writes three or more lengths per event."""

# How a field after the common ones is encoded.
_STRING = 0
_OBJECT = 1

_REGION_NUMBER = {Region.UNSPECIFIED: 0, Region.US: 1, Region.EU: 2}
_MAX_HEADS = 1024
"""Heads cached per encoder (a partner may send for thousands of write keys); past it the cache starts again."""
_NOTHING: Any = object()


def varint(value: int) -> bytes:
    """A non-negative integer as a protobuf base-128 varint (remembered, for the lengths the encoder writes)."""
    known = _VARINTS.get(value)
    if known is not None:
        return known
    out = bytearray()
    rest = value
    while rest > 0x7F:
        out.append(rest & 0x7F | 0x80)
        rest >>= 7
    out.append(rest)
    data = bytes(out)
    if value < _REMEMBERED:
        _VARINTS[value] = data
    return data


def _key(field: Any) -> bytes:
    """The key of a field (a ``FieldDescriptor``): its number and wire type, as a varint."""
    wire_type = _VARINT if field.type == FieldDescriptor.TYPE_ENUM else _LENGTH_DELIMITED
    return varint(field.number << 3 | wire_type)


_REQUESTS = (
    (Track, "track", sidecar_pb2.TrackRequest),
    (Identify, "identify", sidecar_pb2.IdentifyRequest),
    (Page, "page", sidecar_pb2.PageRequest),
    (Screen, "screen", sidecar_pb2.ScreenRequest),
    (Group, "group", sidecar_pb2.GroupRequest),
    (Alias, "alias", sidecar_pb2.AliasRequest),
)
_COMMON = (
    "write_key", "region", "user_id", "anonymous_id", "message_id", "timestamp",
    "context", "context_json", "integrations", "integrations_json",
)  # fmt: skip
"""The fields every request has, with the same numbers (fields 1 to 10); checked below."""


def _common_keys() -> dict[str, bytes]:
    keys = {name: _key(sidecar_pb2.TrackRequest.DESCRIPTOR.fields_by_name[name]) for name in _COMMON}
    for _, _, request_class in _REQUESTS:
        fields = request_class.DESCRIPTOR.fields_by_name
        if any(name not in fields or _key(fields[name]) != key for name, key in keys.items()):
            raise TypeError(f"{request_class.DESCRIPTOR.full_name}: the common fields differ from TrackRequest's")
    return keys


_KEYS = _common_keys()
_USER_ID, _ANONYMOUS_ID, _MESSAGE_ID = _KEYS["user_id"], _KEYS["anonymous_id"], _KEYS["message_id"]
_TIMESTAMP = _KEYS["timestamp"]

Field = tuple[str, int, bytes, bytes]
"""(attribute of the event, how it is encoded, its key, the key of the Struct alternative of an object field)."""


def _own_fields(event_class: type, request_class: Any) -> tuple[Field, ...]:
    """The fields after the common ones (16 and up), in number order."""
    descriptor = request_class.DESCRIPTOR
    names = {field.name for field in dataclasses.fields(event_class)}
    fields: list[Field] = []
    for field in sorted(descriptor.fields, key=lambda f: f.number):
        name = field.name
        if name in _COMMON or name.endswith("_json"):
            continue
        if name not in names:  # a field the Python event does not offer yet is never set, as in to_request
            continue
        if field.type == FieldDescriptor.TYPE_STRING:
            fields.append((name, _STRING, _key(field), b""))
        elif field.message_type is not None and field.message_type.full_name == "google.protobuf.Struct":
            fields.append((name, _OBJECT, _key(descriptor.fields_by_name[f"{name}_json"]), _key(field)))
        else:
            raise TypeError(f"{descriptor.full_name}.{name}: no wire encoding for this field type")
    return tuple(fields)


_LAYOUTS: dict[type, tuple[bytes, tuple[Field, ...]]] = {
    event_class: (_key(sidecar_pb2.BatchEvent.DESCRIPTOR.fields_by_name[member]), _own_fields(event_class, request))
    for event_class, member, request in _REQUESTS
}
"""Per event class: the key of its member of the BatchEvent oneof, and its own fields."""
_ENTRY_KEY = _key(sidecar_pb2.BatchRequest.DESCRIPTOR.fields_by_name["events"])


def head(write_key: str, region: Region | str | None) -> bytes:
    """The ``write_key`` and ``region`` fields, which every request of a client usually shares."""
    key = write_key.encode()
    number = _REGION_NUMBER[Region.parse(region)]
    return b"".join((_KEYS["write_key"], varint(len(key)), key, _KEYS["region"] + _SMALL[number] if number else b""))


def _object(value: Any, json_key: bytes, struct_key: bytes) -> tuple[bytes, bytes, bytes]:
    """An object field: the ``*_json`` bytes of a mapping or dataclass, or the Struct field for a Struct."""
    if isinstance(value, struct_pb2.Struct):
        data = value.SerializeToString()
        return struct_key, varint(len(data)), data
    data = to_json_bytes(value)
    return json_key, varint(len(data)), data


def _timestamp_and_objects(event: Event, parts: list[bytes]) -> None:
    """Append the common fields that many events leave unset: the timestamp, the context and integrations."""
    if event.timestamp is not None:
        data = to_timestamp(event.timestamp).SerializeToString()
        parts += (_TIMESTAMP, varint(len(data)), data)
    if event.context is not None:
        parts += _object(event.context, _KEYS["context_json"], _KEYS["context"])
    if event.integrations is not None:
        parts += _object(event.integrations, _KEYS["integrations_json"], _KEYS["integrations"])


class Encoder:
    """Events to ``BatchRequest`` entries (see the module docstring); thread-safe.

    :meth:`encode`, given an event and the client's default write key and region, returns the event's message id (its
    own, or a new UUIDv7) and its entry bytes. It raises ValueError for an event without a write key or with an unknown
    region, and TypeError for an object that is not JSON or a string field that is not a string, as ``to_request``
    does.
    """

    __slots__ = ("_heads", "_last", "_new_id")

    def __init__(self, new_id: Callable[[], str] = message_ids) -> None:
        self._new_id = new_id
        self._heads: dict[tuple[str, Region | str | None], bytes] = {}
        # The last (write key, region, head) as one value, so that threads never pair one's key with another's head.
        self._last: tuple[str, Region | str | None, bytes] = (_NOTHING, _NOTHING, b"")

    def _head(self, write_key: str | None, region: Region | str | None) -> bytes:
        if not write_key:
            raise ValueError("write_key is required: pass it to the call or to the client")
        cached = self._heads.get((write_key, region))
        if cached is None:
            if len(self._heads) >= _MAX_HEADS:
                self._heads = {}
            cached = self._heads[(write_key, region)] = head(write_key, region)
        self._last = (write_key, region, cached)
        return cached

    def encode(self, event: Event, write_key: str | None, region: Region | str | None) -> tuple[str, bytes]:
        """The event's message id and its entry bytes."""
        # Written out rather than looped over for the common fields: this runs once per event, and a loop over
        # field tables costs a third more. Lengths are looked up inline (a call costs as much as the lookup).
        member, own_fields = _LAYOUTS[type(event)]
        if event.write_key is not None:
            write_key = event.write_key
        if event.region is not None:
            region = event.region
        last = self._last
        prefix = last[2] if last[0] is write_key and last[1] is region else self._head(write_key, region)
        message_id = event.message_id or self._new_id()
        lengths = _VARINTS
        parts = [prefix]
        try:
            if event.user_id:
                data = event.user_id.encode()
                parts += (_USER_ID, lengths.get(len(data)) or varint(len(data)), data)
            if event.anonymous_id:
                data = event.anonymous_id.encode()
                parts += (_ANONYMOUS_ID, lengths.get(len(data)) or varint(len(data)), data)
            data = message_id.encode()
            parts += (_MESSAGE_ID, lengths.get(len(data)) or varint(len(data)), data)
            if event.timestamp is not None or event.context is not None or event.integrations is not None:
                _timestamp_and_objects(event, parts)
            for name, how, key, struct_key in own_fields:
                value = getattr(event, name)
                if how == _STRING:
                    if value:
                        data = value.encode()
                        parts += (key, lengths.get(len(data)) or varint(len(data)), data)
                elif value is not None:
                    if isinstance(value, struct_pb2.Struct):
                        data = value.SerializeToString()
                        parts += (struct_key, varint(len(data)), data)
                    else:
                        data = to_json_bytes(value)
                        parts += (key, lengths.get(len(data)) or varint(len(data)), data)
        except AttributeError as exc:  # str.encode of a value that is not a string
            raise TypeError(f"{type(event).__name__}: a string field holds something else ({exc})") from None
        request = b"".join(parts)
        length = lengths.get(len(request)) or varint(len(request))
        size = len(member) + len(length) + len(request)
        return message_id, b"".join((_ENTRY_KEY, lengths.get(size) or varint(size), member, length, request))


def entry_of(request: Any) -> bytes:
    """The entry bytes of a request message (:meth:`Client.prepare`'s), the same as the encoder gives."""
    data = to_batch_event(request).SerializeToString()
    return b"".join((_ENTRY_KEY, varint(len(data)), data))
