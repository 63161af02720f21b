"""gRPC server reflection on both ``grpc.reflection.v1`` and ``grpc.reflection.v1alpha``, for every symbol.

Third-party tools (grpcurl, ghz, Postman, Evans) call the sidecar without its ``.proto`` files by asking the server
for the file that defines a symbol. grpcio-reflection serves only ``v1alpha`` (current tools ask for ``v1`` first) and
resolves symbols through ``DescriptorPool.FindFileContainingSymbol``, which under protobuf's upb backend does not know
a method's full name (grpc/grpc#34743), so ``grpcurl describe segment.sidecar.v1.SidecarService.Track`` and
``ghz --call ...`` answered "Symbol not found".

This module answers from its own index instead, built once when the server starts: every symbol (package-qualified
messages and their fields, nested types, enums and their values, services and their methods, extensions) of every file
the served services need, transitively, mapped to the file that defines it. The two reflection versions are the same
protocol under two package names (identical messages and field numbers), so one handler serves both; a
``grpc/reflection/v1/reflection.proto`` descriptor is derived from the v1alpha one so that ``v1`` itself can be
described too.

The index also holds ``google/rpc/status.proto`` and ``google/rpc/error_details.proto``: a refused call carries its
``BadRequest``, ``RetryInfo`` or ``QuotaFailure`` as an ``Any`` in the status details, and a reflection client such as
grpcurl can print those fields only when it can look their type up (without them it prints "google.rpc.BadRequest is
not recognized" and the raw bytes).

Requests and what answers them:

============================  ==========================================================================
``list_services``             the served service names, sorted
``file_by_filename``          that file and every file it imports, transitively (serialized descriptors)
``file_containing_symbol``    the file defining the symbol, with its imports; NOT_FOUND for unknown names
``file_containing_extension`` the file defining that extension number of that message
``all_extension_numbers...``  the extension numbers known for that message
============================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection_pb2 as rpb

V1_SERVICE = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"
_METHOD = "ServerReflectionInfo"


def _v1_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The v1 reflection proto, derived from v1alpha's: same messages and numbers, package ``grpc.reflection.v1``."""
    proto = descriptor_pb2.FileDescriptorProto()
    rpb.DESCRIPTOR.CopyToProto(proto)
    proto.name = _V1_FILE
    proto.package = "grpc.reflection.v1"
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    for message in proto.message_type:
        for field in message.field:
            field.type_name = field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    return proto


class SymbolIndex:
    """Every symbol of a set of files and their imports, mapped to its file; every file's serialized descriptor."""

    __slots__ = ("_dependencies", "_extensions", "_files", "_symbols")

    def __init__(
        self, files: Iterable[FileDescriptor], extra: Iterable[descriptor_pb2.FileDescriptorProto] = ()
    ) -> None:
        self._files: dict[str, bytes] = {}
        self._dependencies: dict[str, tuple[str, ...]] = {}
        self._symbols: dict[str, str] = {}
        self._extensions: dict[str, dict[int, str]] = {}
        for descriptor in files:
            self._add_file(descriptor)
        for proto in extra:
            self._add_proto(proto)

    def _add_file(self, descriptor: FileDescriptor) -> None:
        if descriptor.name in self._files:
            return
        proto = descriptor_pb2.FileDescriptorProto()
        descriptor.CopyToProto(proto)
        self._add_proto(proto)
        for dependency in descriptor.dependencies:
            self._add_file(dependency)

    def _add_proto(self, proto: descriptor_pb2.FileDescriptorProto) -> None:
        """Index one file from its descriptor proto (names are read from the proto, which every backend fills)."""
        name = proto.name
        self._files[name] = proto.SerializeToString()
        self._dependencies[name] = tuple(proto.dependency)
        prefix = f"{proto.package}." if proto.package else ""
        for message in proto.message_type:
            self._add_message(name, prefix, message)
        for enum in proto.enum_type:
            self._add_enum(name, prefix, enum)
        for extension in proto.extension:
            self._add_extension(name, prefix, extension)
        for service in proto.service:
            full = prefix + service.name
            self._symbols[full] = name
            for method in service.method:
                self._symbols[f"{full}.{method.name}"] = name

    def _add_message(self, file: str, prefix: str, message: descriptor_pb2.DescriptorProto) -> None:
        full = prefix + message.name
        self._symbols[full] = file
        for field in message.field:
            self._symbols[f"{full}.{field.name}"] = file
        for oneof in message.oneof_decl:
            self._symbols[f"{full}.{oneof.name}"] = file
        for nested in message.nested_type:
            self._add_message(file, f"{full}.", nested)
        for enum in message.enum_type:
            self._add_enum(file, f"{full}.", enum)
        for extension in message.extension:
            self._add_extension(file, f"{full}.", extension)

    def _add_enum(self, file: str, prefix: str, enum: descriptor_pb2.EnumDescriptorProto) -> None:
        self._symbols[prefix + enum.name] = file
        for value in enum.value:
            # Enum values are scoped beside their enum, as in C++: ``pkg.REGION_US``, not ``pkg.Region.REGION_US``.
            self._symbols[prefix + value.name] = file

    def _add_extension(self, file: str, prefix: str, extension: descriptor_pb2.FieldDescriptorProto) -> None:
        self._symbols[prefix + extension.name] = file
        extendee = extension.extendee.lstrip(".")
        self._extensions.setdefault(extendee, {})[extension.number] = file

    @property
    def symbols(self) -> frozenset[str]:
        """Every fully qualified symbol the index resolves."""
        return frozenset(self._symbols)

    def file_of(self, symbol: str) -> str | None:
        """The name of the file defining ``symbol`` (a leading dot is ignored), or None."""
        return self._symbols.get(symbol.lstrip("."))

    def extension_file(self, message: str, number: int) -> str | None:
        """The name of the file defining extension ``number`` of ``message``, or None."""
        return self._extensions.get(message.lstrip("."), {}).get(number)

    def extension_numbers(self, message: str) -> list[int] | None:
        """The known extension numbers of ``message``, sorted; None when the message is unknown."""
        name = message.lstrip(".")
        if name not in self._symbols:
            return None
        return sorted(self._extensions.get(name, {}))

    def with_imports(self, file: str) -> list[bytes] | None:
        """The serialized descriptors of ``file`` and of every file it imports, the file itself first; or None."""
        if file not in self._files:
            return None
        seen: list[str] = []
        stack = [file]
        while stack:
            name = stack.pop()
            if name in seen or name not in self._files:
                continue
            seen.append(name)
            stack.extend(self._dependencies[name])
        return [self._files[name] for name in seen]


class ReflectionServicer:
    """The ``ServerReflectionInfo`` stream of both reflection versions, answered from a :class:`SymbolIndex`."""

    __slots__ = ("_index", "_services")

    def __init__(self, service_names: Iterable[str], index: SymbolIndex) -> None:
        self._services = tuple(sorted(set(service_names)))
        self._index = index

    def answer(self, request: rpb.ServerReflectionRequest) -> rpb.ServerReflectionResponse:
        """The response to one reflection request (pure: no I/O)."""
        kind = request.WhichOneof("message_request")
        files: list[bytes] | None = None
        if kind == "list_services":
            return rpb.ServerReflectionResponse(
                original_request=request,
                list_services_response=rpb.ListServiceResponse(
                    service=[rpb.ServiceResponse(name=name) for name in self._services]
                ),
            )
        if kind == "file_by_filename":
            files = self._index.with_imports(request.file_by_filename)
        elif kind == "file_containing_symbol":
            file = self._index.file_of(request.file_containing_symbol)
            files = None if file is None else self._index.with_imports(file)
        elif kind == "file_containing_extension":
            ask = request.file_containing_extension
            file = self._index.extension_file(ask.containing_type, ask.extension_number)
            files = None if file is None else self._index.with_imports(file)
        elif kind == "all_extension_numbers_of_type":
            numbers = self._index.extension_numbers(request.all_extension_numbers_of_type)
            if numbers is not None:
                return rpb.ServerReflectionResponse(
                    original_request=request,
                    all_extension_numbers_response=rpb.ExtensionNumberResponse(
                        base_type_name=request.all_extension_numbers_of_type.lstrip("."), extension_number=numbers
                    ),
                )
        else:
            return _error(request, grpc.StatusCode.INVALID_ARGUMENT, "unknown reflection request")
        if files is None:
            return _error(request, grpc.StatusCode.NOT_FOUND, "not found")
        return rpb.ServerReflectionResponse(
            original_request=request,
            file_descriptor_response=rpb.FileDescriptorResponse(file_descriptor_proto=files),
        )

    async def info(
        self, requests: AsyncIterator[rpb.ServerReflectionRequest], context: Any
    ) -> AsyncIterator[rpb.ServerReflectionResponse]:
        """The bidirectional stream: one response per request, in order."""
        del context
        async for request in requests:
            yield self.answer(request)


def _error(request: rpb.ServerReflectionRequest, code: grpc.StatusCode, message: str) -> rpb.ServerReflectionResponse:
    return rpb.ServerReflectionResponse(
        original_request=request,
        error_response=rpb.ErrorResponse(error_code=code.value[0], error_message=message),
    )


def _service_files(service_names: Iterable[str]) -> list[FileDescriptor]:
    pool = descriptor_pool.Default()
    return [pool.FindServiceByName(name).file for name in service_names]


def enable_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> ReflectionServicer:
    """Serve reflection for ``service_names`` (each in the default descriptor pool) on v1 and v1alpha."""
    names = tuple(service_names)
    # The error details' files are no service's import, yet every refused call refers to their types.
    details = (status_pb2.DESCRIPTOR, error_details_pb2.DESCRIPTOR)
    index = SymbolIndex([*_service_files(names), rpb.DESCRIPTOR, *details], extra=[_v1_file_descriptor()])
    servicer = ReflectionServicer((*names, V1_SERVICE, V1ALPHA_SERVICE), index)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.info,
        request_deserializer=rpb.ServerReflectionRequest.FromString,
        response_serializer=rpb.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(service, {_METHOD: handler}) for service in (V1_SERVICE, V1ALPHA_SERVICE)]
    )
    return servicer


__all__ = ["V1ALPHA_SERVICE", "V1_SERVICE", "ReflectionServicer", "SymbolIndex", "enable_reflection"]
