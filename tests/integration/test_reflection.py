"""Reflection lets tools without the proto files call the sidecar: every symbol resolves on ``grpc.reflection.v1`` and
``v1alpha``, checked in Python everywhere and with grpcurl (a third-party client) where it is installed.

grpcurl is installed by ``.ci/run`` (``go install`` from the Go module proxy into ``tools/go-bin``); without it the
grpcurl test skips, saying so, unless ``TEST_REQUIRE_GRPCURL=1`` (CI sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import grpc
import orjson
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as rpb

from sidecar.api.reflection import V1_SERVICE, V1ALPHA_SERVICE
from tests.support.harness import Collectors, SidecarUnderTest

SERVICE = "segment.sidecar.v1.SidecarService"
GRPCURL_IN_TREE = Path(__file__).resolve().parents[2] / "tools" / "go-bin" / "grpcurl"


async def ask(
    channel: grpc.aio.Channel, service: str, requests: list[rpb.ServerReflectionRequest]
) -> list[rpb.ServerReflectionResponse]:
    """Send ``requests`` on one reflection stream of ``service`` (v1 and v1alpha share their messages)."""
    call = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=rpb.ServerReflectionRequest.SerializeToString,
        response_deserializer=rpb.ServerReflectionResponse.FromString,
    )
    stream = call(iter(requests), timeout=10)
    return [response async for response in stream]


def files_of(response: rpb.ServerReflectionResponse) -> list[descriptor_pb2.FileDescriptorProto]:
    """The file descriptors a response carries (fails the test on an error response)."""
    assert response.WhichOneof("message_response") == "file_descriptor_response", response.error_response
    return [
        descriptor_pb2.FileDescriptorProto.FromString(blob)
        for blob in response.file_descriptor_response.file_descriptor_proto
    ]


def symbols_of(proto: descriptor_pb2.FileDescriptorProto) -> set[str]:
    """The services, methods, messages (nested too) and enums a file defines, fully qualified."""
    names: set[str] = set()

    def messages(prefix: str, message: descriptor_pb2.DescriptorProto) -> None:
        names.add(prefix + message.name)
        for nested in message.nested_type:
            messages(f"{prefix}{message.name}.", nested)
        names.update(f"{prefix}{message.name}.{enum.name}" for enum in message.enum_type)

    prefix = f"{proto.package}."
    for service in proto.service:
        names.add(prefix + service.name)
        names.update(f"{prefix}{service.name}.{method.name}" for method in service.method)
    for message in proto.message_type:
        messages(prefix, message)
    names.update(prefix + enum.name for enum in proto.enum_type)
    return names


@pytest.mark.parametrize("version", [V1_SERVICE, V1ALPHA_SERVICE])
async def test_every_symbol_of_every_service_resolves(sidecar: SidecarUnderTest, version: str) -> None:
    """Both reflection versions list v1 and every service, and each service, method, message and enum of the API
    resolves to the file that defines it (methods failed under upb with grpcio-reflection: grpc/grpc#34743)."""
    (listing,) = await ask(sidecar.channel, version, [rpb.ServerReflectionRequest(list_services="")])
    services = {s.name for s in listing.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health", V1_SERVICE, V1ALPHA_SERVICE} <= services
    for service in sorted(services):
        (answer,) = await ask(sidecar.channel, version, [rpb.ServerReflectionRequest(file_containing_symbol=service)])
        defining = files_of(answer)[0]
        symbols = symbols_of(defining)
        assert service in symbols
        replies = await ask(
            sidecar.channel,
            version,
            [rpb.ServerReflectionRequest(file_containing_symbol=symbol) for symbol in sorted(symbols)],
        )
        resolved = {symbol: files_of(reply)[0].name for symbol, reply in zip(sorted(symbols), replies, strict=True)}
        assert set(resolved.values()) == {defining.name}, resolved
    api = symbols_of(
        files_of(
            (await ask(sidecar.channel, version, [rpb.ServerReflectionRequest(file_containing_symbol=SERVICE)]))[0]
        )[0]
    )
    assert {
        f"{SERVICE}.Track",
        f"{SERVICE}.Batch",
        "segment.sidecar.v1.Region",
        "segment.sidecar.v1.TrackRequest",
    } <= api


DETAIL_TYPES = ("google.rpc.BadRequest", "google.rpc.RetryInfo", "google.rpc.QuotaFailure", "google.rpc.Status")


@pytest.mark.parametrize("version", [V1_SERVICE, V1ALPHA_SERVICE])
async def test_error_detail_types_resolve(sidecar: SidecarUnderTest, version: str) -> None:
    """The types a refused call carries in its status details (BadRequest, RetryInfo, QuotaFailure, and Status
    itself) resolve on both reflection versions, so a client without the proto files can decode them."""
    replies = await ask(
        sidecar.channel, version, [rpb.ServerReflectionRequest(file_containing_symbol=name) for name in DETAIL_TYPES]
    )
    files = [files_of(reply)[0].name for reply in replies]
    assert files == ["google/rpc/error_details.proto"] * 3 + ["google/rpc/status.proto"]


async def test_imports_come_along_and_unknown_symbols_are_not_found(sidecar: SidecarUnderTest) -> None:
    """A file comes with every file it imports (Struct's), and an unknown symbol answers NOT_FOUND, not an error."""
    found, missing = await ask(
        sidecar.channel,
        V1_SERVICE,
        [
            rpb.ServerReflectionRequest(file_containing_symbol=f"{SERVICE}.Track"),
            rpb.ServerReflectionRequest(file_containing_symbol="segment.sidecar.v1.NoSuchThing"),
        ],
    )
    names = {proto.name for proto in files_of(found)}
    assert "google/protobuf/struct.proto" in names
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def grpcurl_or_skip() -> str:
    """grpcurl from tools/go-bin or PATH; skips without it, or fails when TEST_REQUIRE_GRPCURL=1."""
    found = str(GRPCURL_IN_TREE) if GRPCURL_IN_TREE.exists() else shutil.which("grpcurl")
    if found is None:
        reason = "grpcurl is not installed (.ci/run installs it into tools/go-bin)"
        if os.environ.get("TEST_REQUIRE_GRPCURL") == "1":
            pytest.fail(f"TEST_REQUIRE_GRPCURL=1 but {reason}")
        pytest.skip(reason)
    return found


async def grpcurl(
    binary: str, port: int | None, *args: str, flags: tuple[str, ...] = (), expect_failure: bool = False
) -> str:
    """Run ``grpcurl -plaintext [flags] <sidecar> [args]`` (by reflection only); return its output, fail on non-zero
    (or, with ``expect_failure``, on zero: a refused call)."""
    process = await asyncio.create_subprocess_exec(
        binary,
        "-plaintext",
        *flags,
        f"127.0.0.1:{port}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    text = output.decode()
    assert (process.returncode != 0) is expect_failure, f"grpcurl {' '.join(args)}: {text}"
    return text


async def test_grpcurl_lists_describes_and_calls_by_reflection(
    sidecar: SidecarUnderTest, collectors: Collectors
) -> None:
    """grpcurl, with no proto files, lists the services, describes every service, method, message and enum of the
    API, and makes a Track call that reaches the collector."""
    binary = grpcurl_or_skip()
    port = sidecar.app.port
    listed = (await grpcurl(binary, port, "list")).split()
    assert {SERVICE, V1_SERVICE, V1ALPHA_SERVICE, "grpc.health.v1.Health"} <= set(listed)
    (answer,) = await ask(sidecar.channel, V1_SERVICE, [rpb.ServerReflectionRequest(file_containing_symbol=SERVICE)])
    symbols = sorted(symbols_of(files_of(answer)[0]) | {"grpc.health.v1.Health.Check"})
    for symbol in symbols:
        described = await grpcurl(binary, port, "describe", symbol)
        # A map field's entry message is described as such, every other symbol as "<symbol> is a ...".
        assert f"{symbol} is a" in described or f"{symbol} is the entry type for a map field" in described
    data = orjson.dumps({"write_key": "wk-grpcurl", "user_id": "u-1", "event": "Email Opened"}).decode()
    reply = orjson.loads(await grpcurl(binary, port, f"{SERVICE}/Track", flags=("-d", data)))
    await collectors.us.store.wait_for_events(1, timeout=10)
    assert collectors.us.store.message_ids("wk-grpcurl") == [reply["message_id"]]


async def test_grpcurl_prints_the_field_violations_of_a_refused_call(sidecar: SidecarUnderTest) -> None:
    """A Track without user_id, made with grpcurl and no proto files, prints its BadRequest's field violation
    (field and description), not "google.rpc.BadRequest is not recognized" and raw bytes."""
    binary = grpcurl_or_skip()
    data = orjson.dumps({"write_key": "wk-grpcurl", "event": "Email Opened"}).decode()
    output = await grpcurl(binary, sidecar.app.port, f"{SERVICE}/Track", flags=("-d", data), expect_failure=True)
    assert "Code: InvalidArgument" in output
    assert "not recognized" not in output
    assert '"@type": "type.googleapis.com/google.rpc.BadRequest"' in output
    assert '"field": "user_id"' in output
    assert '"description": "is required' in output
