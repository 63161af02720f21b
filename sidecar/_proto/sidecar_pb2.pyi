import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Region(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGION_UNSPECIFIED: _ClassVar[Region]
    REGION_US: _ClassVar[Region]
    REGION_EU: _ClassVar[Region]

class WriteKeyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WRITE_KEY_STATE_UNSPECIFIED: _ClassVar[WriteKeyState]
    WRITE_KEY_STATE_UNKNOWN: _ClassVar[WriteKeyState]
    WRITE_KEY_STATE_OK: _ClassVar[WriteKeyState]
    WRITE_KEY_STATE_REFUSED: _ClassVar[WriteKeyState]
    WRITE_KEY_STATE_RETRYING: _ClassVar[WriteKeyState]

class OutcomeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_KIND_UNSPECIFIED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_DELIVERED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_DEAD_LETTERED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_EXPIRED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_KEY_REFUSED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_KEY_RECOVERED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_KEY_RETRYING: _ClassVar[OutcomeKind]

class MessageState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_STATE_UNSPECIFIED: _ClassVar[MessageState]
    MESSAGE_STATE_UNKNOWN: _ClassVar[MessageState]
    MESSAGE_STATE_WAITING: _ClassVar[MessageState]
    MESSAGE_STATE_IN_FLIGHT: _ClassVar[MessageState]
    MESSAGE_STATE_DELIVERED: _ClassVar[MessageState]
    MESSAGE_STATE_DEAD_LETTERED: _ClassVar[MessageState]
    MESSAGE_STATE_EXPIRED: _ClassVar[MessageState]
REGION_UNSPECIFIED: Region
REGION_US: Region
REGION_EU: Region
WRITE_KEY_STATE_UNSPECIFIED: WriteKeyState
WRITE_KEY_STATE_UNKNOWN: WriteKeyState
WRITE_KEY_STATE_OK: WriteKeyState
WRITE_KEY_STATE_REFUSED: WriteKeyState
WRITE_KEY_STATE_RETRYING: WriteKeyState
OUTCOME_KIND_UNSPECIFIED: OutcomeKind
OUTCOME_KIND_DELIVERED: OutcomeKind
OUTCOME_KIND_DEAD_LETTERED: OutcomeKind
OUTCOME_KIND_EXPIRED: OutcomeKind
OUTCOME_KIND_KEY_REFUSED: OutcomeKind
OUTCOME_KIND_KEY_RECOVERED: OutcomeKind
OUTCOME_KIND_KEY_RETRYING: OutcomeKind
MESSAGE_STATE_UNSPECIFIED: MessageState
MESSAGE_STATE_UNKNOWN: MessageState
MESSAGE_STATE_WAITING: MessageState
MESSAGE_STATE_IN_FLIGHT: MessageState
MESSAGE_STATE_DELIVERED: MessageState
MESSAGE_STATE_DEAD_LETTERED: MessageState
MESSAGE_STATE_EXPIRED: MessageState

class TrackRequest(_message.Message):
    __slots__ = ("write_key", "region", "user_id", "anonymous_id", "message_id", "timestamp", "context", "context_json", "integrations", "integrations_json", "event", "properties", "properties_json")
    WRITE_KEY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_JSON_FIELD_NUMBER: _ClassVar[int]
    write_key: str
    region: Region
    user_id: str
    anonymous_id: str
    message_id: str
    timestamp: _timestamp_pb2.Timestamp
    context: _struct_pb2.Struct
    context_json: bytes
    integrations: _struct_pb2.Struct
    integrations_json: bytes
    event: str
    properties: _struct_pb2.Struct
    properties_json: bytes
    def __init__(self, write_key: _Optional[str] = ..., region: _Optional[_Union[Region, str]] = ..., user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., message_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context_json: _Optional[bytes] = ..., integrations: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., integrations_json: _Optional[bytes] = ..., event: _Optional[str] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., properties_json: _Optional[bytes] = ...) -> None: ...

class TrackResponse(_message.Message):
    __slots__ = ("message_id", "warnings")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    warnings: _containers.RepeatedCompositeFieldContainer[Warning]
    def __init__(self, message_id: _Optional[str] = ..., warnings: _Optional[_Iterable[_Union[Warning, _Mapping]]] = ...) -> None: ...

class IdentifyRequest(_message.Message):
    __slots__ = ("write_key", "region", "user_id", "anonymous_id", "message_id", "timestamp", "context", "context_json", "integrations", "integrations_json", "traits", "traits_json")
    WRITE_KEY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    TRAITS_JSON_FIELD_NUMBER: _ClassVar[int]
    write_key: str
    region: Region
    user_id: str
    anonymous_id: str
    message_id: str
    timestamp: _timestamp_pb2.Timestamp
    context: _struct_pb2.Struct
    context_json: bytes
    integrations: _struct_pb2.Struct
    integrations_json: bytes
    traits: _struct_pb2.Struct
    traits_json: bytes
    def __init__(self, write_key: _Optional[str] = ..., region: _Optional[_Union[Region, str]] = ..., user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., message_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context_json: _Optional[bytes] = ..., integrations: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., integrations_json: _Optional[bytes] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., traits_json: _Optional[bytes] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("message_id", "warnings")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    warnings: _containers.RepeatedCompositeFieldContainer[Warning]
    def __init__(self, message_id: _Optional[str] = ..., warnings: _Optional[_Iterable[_Union[Warning, _Mapping]]] = ...) -> None: ...

class PageRequest(_message.Message):
    __slots__ = ("write_key", "region", "user_id", "anonymous_id", "message_id", "timestamp", "context", "context_json", "integrations", "integrations_json", "name", "category", "properties", "properties_json")
    WRITE_KEY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_JSON_FIELD_NUMBER: _ClassVar[int]
    write_key: str
    region: Region
    user_id: str
    anonymous_id: str
    message_id: str
    timestamp: _timestamp_pb2.Timestamp
    context: _struct_pb2.Struct
    context_json: bytes
    integrations: _struct_pb2.Struct
    integrations_json: bytes
    name: str
    category: str
    properties: _struct_pb2.Struct
    properties_json: bytes
    def __init__(self, write_key: _Optional[str] = ..., region: _Optional[_Union[Region, str]] = ..., user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., message_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context_json: _Optional[bytes] = ..., integrations: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., integrations_json: _Optional[bytes] = ..., name: _Optional[str] = ..., category: _Optional[str] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., properties_json: _Optional[bytes] = ...) -> None: ...

class PageResponse(_message.Message):
    __slots__ = ("message_id", "warnings")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    warnings: _containers.RepeatedCompositeFieldContainer[Warning]
    def __init__(self, message_id: _Optional[str] = ..., warnings: _Optional[_Iterable[_Union[Warning, _Mapping]]] = ...) -> None: ...

class ScreenRequest(_message.Message):
    __slots__ = ("write_key", "region", "user_id", "anonymous_id", "message_id", "timestamp", "context", "context_json", "integrations", "integrations_json", "name", "properties", "properties_json")
    WRITE_KEY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_JSON_FIELD_NUMBER: _ClassVar[int]
    write_key: str
    region: Region
    user_id: str
    anonymous_id: str
    message_id: str
    timestamp: _timestamp_pb2.Timestamp
    context: _struct_pb2.Struct
    context_json: bytes
    integrations: _struct_pb2.Struct
    integrations_json: bytes
    name: str
    properties: _struct_pb2.Struct
    properties_json: bytes
    def __init__(self, write_key: _Optional[str] = ..., region: _Optional[_Union[Region, str]] = ..., user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., message_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context_json: _Optional[bytes] = ..., integrations: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., integrations_json: _Optional[bytes] = ..., name: _Optional[str] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., properties_json: _Optional[bytes] = ...) -> None: ...

class ScreenResponse(_message.Message):
    __slots__ = ("message_id", "warnings")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    warnings: _containers.RepeatedCompositeFieldContainer[Warning]
    def __init__(self, message_id: _Optional[str] = ..., warnings: _Optional[_Iterable[_Union[Warning, _Mapping]]] = ...) -> None: ...

class GroupRequest(_message.Message):
    __slots__ = ("write_key", "region", "user_id", "anonymous_id", "message_id", "timestamp", "context", "context_json", "integrations", "integrations_json", "group_id", "traits", "traits_json")
    WRITE_KEY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    TRAITS_JSON_FIELD_NUMBER: _ClassVar[int]
    write_key: str
    region: Region
    user_id: str
    anonymous_id: str
    message_id: str
    timestamp: _timestamp_pb2.Timestamp
    context: _struct_pb2.Struct
    context_json: bytes
    integrations: _struct_pb2.Struct
    integrations_json: bytes
    group_id: str
    traits: _struct_pb2.Struct
    traits_json: bytes
    def __init__(self, write_key: _Optional[str] = ..., region: _Optional[_Union[Region, str]] = ..., user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., message_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context_json: _Optional[bytes] = ..., integrations: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., integrations_json: _Optional[bytes] = ..., group_id: _Optional[str] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., traits_json: _Optional[bytes] = ...) -> None: ...

class GroupResponse(_message.Message):
    __slots__ = ("message_id", "warnings")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    warnings: _containers.RepeatedCompositeFieldContainer[Warning]
    def __init__(self, message_id: _Optional[str] = ..., warnings: _Optional[_Iterable[_Union[Warning, _Mapping]]] = ...) -> None: ...

class AliasRequest(_message.Message):
    __slots__ = ("write_key", "region", "user_id", "anonymous_id", "message_id", "timestamp", "context", "context_json", "integrations", "integrations_json", "previous_id")
    WRITE_KEY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_ID_FIELD_NUMBER: _ClassVar[int]
    write_key: str
    region: Region
    user_id: str
    anonymous_id: str
    message_id: str
    timestamp: _timestamp_pb2.Timestamp
    context: _struct_pb2.Struct
    context_json: bytes
    integrations: _struct_pb2.Struct
    integrations_json: bytes
    previous_id: str
    def __init__(self, write_key: _Optional[str] = ..., region: _Optional[_Union[Region, str]] = ..., user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., message_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context_json: _Optional[bytes] = ..., integrations: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., integrations_json: _Optional[bytes] = ..., previous_id: _Optional[str] = ...) -> None: ...

class AliasResponse(_message.Message):
    __slots__ = ("message_id", "warnings")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    warnings: _containers.RepeatedCompositeFieldContainer[Warning]
    def __init__(self, message_id: _Optional[str] = ..., warnings: _Optional[_Iterable[_Union[Warning, _Mapping]]] = ...) -> None: ...

class Warning(_message.Message):
    __slots__ = ("code", "field", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    field: str
    message: str
    def __init__(self, code: _Optional[str] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class FieldViolation(_message.Message):
    __slots__ = ("field", "description")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class BatchEvent(_message.Message):
    __slots__ = ("track", "identify", "page", "screen", "group", "alias")
    TRACK_FIELD_NUMBER: _ClassVar[int]
    IDENTIFY_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    SCREEN_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    track: TrackRequest
    identify: IdentifyRequest
    page: PageRequest
    screen: ScreenRequest
    group: GroupRequest
    alias: AliasRequest
    def __init__(self, track: _Optional[_Union[TrackRequest, _Mapping]] = ..., identify: _Optional[_Union[IdentifyRequest, _Mapping]] = ..., page: _Optional[_Union[PageRequest, _Mapping]] = ..., screen: _Optional[_Union[ScreenRequest, _Mapping]] = ..., group: _Optional[_Union[GroupRequest, _Mapping]] = ..., alias: _Optional[_Union[AliasRequest, _Mapping]] = ...) -> None: ...

class BatchRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[BatchEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[BatchEvent, _Mapping]]] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("message_id", "rejected", "warnings")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    rejected: Rejection
    warnings: _containers.RepeatedCompositeFieldContainer[Warning]
    def __init__(self, message_id: _Optional[str] = ..., rejected: _Optional[_Union[Rejection, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[Warning, _Mapping]]] = ...) -> None: ...

class Rejection(_message.Message):
    __slots__ = ("code", "reason", "field_violations")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    field_violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., field_violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ...) -> None: ...

class BatchResponse(_message.Message):
    __slots__ = ("results", "accepted", "rejected")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchResult]
    accepted: int
    rejected: int
    def __init__(self, results: _Optional[_Iterable[_Union[BatchResult, _Mapping]]] = ..., accepted: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class FlushRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FlushResponse(_message.Message):
    __slots__ = ("delivered", "dead_lettered", "parked", "parked_write_key_hashes")
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    PARKED_FIELD_NUMBER: _ClassVar[int]
    PARKED_WRITE_KEY_HASHES_FIELD_NUMBER: _ClassVar[int]
    delivered: int
    dead_lettered: int
    parked: int
    parked_write_key_hashes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, delivered: _Optional[int] = ..., dead_lettered: _Optional[int] = ..., parked: _Optional[int] = ..., parked_write_key_hashes: _Optional[_Iterable[str]] = ...) -> None: ...

class WriteKeyStatus(_message.Message):
    __slots__ = ("fingerprint", "region", "state", "state_since", "last_status", "last_response", "backlog_events", "oldest_accepted_at", "last_delivered_at", "dead_letters_by_reason")
    class DeadLettersByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_SINCE_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_EVENTS_FIELD_NUMBER: _ClassVar[int]
    OLDEST_ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    region: Region
    state: WriteKeyState
    state_since: _timestamp_pb2.Timestamp
    last_status: int
    last_response: str
    backlog_events: int
    oldest_accepted_at: _timestamp_pb2.Timestamp
    last_delivered_at: _timestamp_pb2.Timestamp
    dead_letters_by_reason: _containers.ScalarMap[str, int]
    def __init__(self, fingerprint: _Optional[str] = ..., region: _Optional[_Union[Region, str]] = ..., state: _Optional[_Union[WriteKeyState, str]] = ..., state_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_status: _Optional[int] = ..., last_response: _Optional[str] = ..., backlog_events: _Optional[int] = ..., oldest_accepted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dead_letters_by_reason: _Optional[_Mapping[str, int]] = ...) -> None: ...

class GetWriteKeyStatusRequest(_message.Message):
    __slots__ = ("write_key", "region")
    WRITE_KEY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    write_key: str
    region: Region
    def __init__(self, write_key: _Optional[str] = ..., region: _Optional[_Union[Region, str]] = ...) -> None: ...

class GetWriteKeyStatusResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: WriteKeyStatus
    def __init__(self, status: _Optional[_Union[WriteKeyStatus, _Mapping]] = ...) -> None: ...

class ListWriteKeysRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: WriteKeyState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[WriteKeyState, str]] = ...) -> None: ...

class ListWriteKeysResponse(_message.Message):
    __slots__ = ("write_keys", "next_page_token")
    WRITE_KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    write_keys: _containers.RepeatedCompositeFieldContainer[WriteKeyStatus]
    next_page_token: str
    def __init__(self, write_keys: _Optional[_Iterable[_Union[WriteKeyStatus, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("cursor", "kind", "time", "write_key_fingerprint", "region", "message_id", "dead_letter_reason", "segment_status", "segment_response")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    WRITE_KEY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_REASON_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_STATUS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    kind: OutcomeKind
    time: _timestamp_pb2.Timestamp
    write_key_fingerprint: str
    region: Region
    message_id: str
    dead_letter_reason: str
    segment_status: int
    segment_response: str
    def __init__(self, cursor: _Optional[str] = ..., kind: _Optional[_Union[OutcomeKind, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., write_key_fingerprint: _Optional[str] = ..., region: _Optional[_Union[Region, str]] = ..., message_id: _Optional[str] = ..., dead_letter_reason: _Optional[str] = ..., segment_status: _Optional[int] = ..., segment_response: _Optional[str] = ...) -> None: ...

class WatchOutcomesRequest(_message.Message):
    __slots__ = ("after_cursor", "write_keys", "kinds", "from_now")
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    WRITE_KEYS_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    FROM_NOW_FIELD_NUMBER: _ClassVar[int]
    after_cursor: str
    write_keys: _containers.RepeatedScalarFieldContainer[str]
    kinds: _containers.RepeatedScalarFieldContainer[OutcomeKind]
    from_now: bool
    def __init__(self, after_cursor: _Optional[str] = ..., write_keys: _Optional[_Iterable[str]] = ..., kinds: _Optional[_Iterable[_Union[OutcomeKind, str]]] = ..., from_now: _Optional[bool] = ...) -> None: ...

class WatchOutcomesResponse(_message.Message):
    __slots__ = ("outcome",)
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    outcome: Outcome
    def __init__(self, outcome: _Optional[_Union[Outcome, _Mapping]] = ...) -> None: ...

class GetMessageOutcomeRequest(_message.Message):
    __slots__ = ("message_id", "write_key")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    WRITE_KEY_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    write_key: str
    def __init__(self, message_id: _Optional[str] = ..., write_key: _Optional[str] = ...) -> None: ...

class GetMessageOutcomeResponse(_message.Message):
    __slots__ = ("state", "outcome", "write_key_fingerprint", "region", "accepted_at")
    STATE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    WRITE_KEY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    state: MessageState
    outcome: Outcome
    write_key_fingerprint: str
    region: Region
    accepted_at: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[MessageState, str]] = ..., outcome: _Optional[_Union[Outcome, _Mapping]] = ..., write_key_fingerprint: _Optional[str] = ..., region: _Optional[_Union[Region, str]] = ..., accepted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
