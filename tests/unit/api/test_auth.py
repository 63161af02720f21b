"""SIDECAR_AUTH_TOKEN: every RPC needs the bearer token, health stays open on loopback, the token is never shown."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from structlog.testing import capture_logs

from sidecar._proto import sidecar_pb2 as pb
from sidecar.api.auth import TokenInterceptor, is_loopback_peer
from sidecar.config import load
from sidecar.errors import ConfigError
from tests.support.harness import Collectors, SidecarUnderTest, free_port, start_sidecar

TOKEN = "s3cret-token-value"
GOOD = (("authorization", f"Bearer {TOKEN}"),)


@pytest.fixture
async def guarded(collectors: Collectors, tmp_path: Path) -> AsyncIterator[SidecarUnderTest]:
    """An in-process sidecar with a token."""
    running = await start_sidecar(collectors, tmp_path / "spool", {"SIDECAR_AUTH_TOKEN": TOKEN})
    try:
        yield running
    finally:
        await running.close()


async def test_calls_without_or_with_a_wrong_token_are_unauthenticated(guarded: SidecarUnderTest) -> None:
    """No metadata, a wrong token, the token without `Bearer`: UNAUTHENTICATED, the token never in the message or
    the log; the right token is accepted."""
    request = pb.TrackRequest(write_key="wk", user_id="u", event="Report Generated")
    with capture_logs() as logs:
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await guarded.stub.Track(request, metadata=metadata, timeout=5)
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert TOKEN not in (refused.value.details() or "")
            assert "SIDECAR_AUTH_TOKEN" in (refused.value.details() or "")
    assert TOKEN not in repr(logs)
    assert any(entry["event"] == "call_unauthenticated" for entry in logs)
    reply = await guarded.stub.Track(request, metadata=GOOD, timeout=5)
    assert reply.message_id


async def test_a_call_without_the_token_is_refused_before_its_request_is_read() -> None:
    """Without the token every call's handler takes its request as a stream, so the refusal runs before gRPC reads
    a byte of the message (a refused 16 MiB Batch costs one HTTP/2 window); a call with the token is handed on
    unchanged."""

    async def reply(request: object, context: object) -> bytes:
        return b""

    inner = grpc.unary_unary_rpc_method_handler(reply, request_deserializer=bytes, response_serializer=bytes)

    async def continuation(details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        return inner

    interceptor = TokenInterceptor(TOKEN)
    for method in ("/segment.sidecar.v1.SidecarService/Batch", "/grpc.health.v1.Health/Check"):
        details = SimpleNamespace(method=method, invocation_metadata=())
        handler = await interceptor.intercept_service(continuation, cast(grpc.HandlerCallDetails, details))
        assert handler.request_streaming, method
        assert handler.stream_unary is not None
    authorized = SimpleNamespace(method="/segment.sidecar.v1.SidecarService/Batch", invocation_metadata=GOOD)
    assert await interceptor.intercept_service(continuation, cast(grpc.HandlerCallDetails, authorized)) is inner


async def test_health_is_open_on_loopback_and_reflection_is_not(guarded: SidecarUnderTest) -> None:
    """A probe beside the sidecar needs no token; reflection (a streaming RPC) does."""
    health = health_pb2_grpc.HealthStub(guarded.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(guarded.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    # Nothing is written on the refused stream: a request racing the server's refusal would fail on the client's
    # side (INTERNAL) before the status is read.
    refused = reflection.ServerReflectionInfo(timeout=5)
    assert await refused.code() is grpc.StatusCode.UNAUTHENTICATED
    names = [
        service.name
        async for reply in reflection.ServerReflectionInfo(iter([request]), metadata=GOOD, timeout=5)
        for service in reply.list_services_response.service
    ]
    assert "segment.sidecar.v1.SidecarService" in names


def test_only_loopback_peers_count_as_local() -> None:
    """Peers as gRPC names them."""
    assert is_loopback_peer("ipv4:127.0.0.1:5000") and is_loopback_peer("ipv6:[::1]:5000")
    assert is_loopback_peer("unix:/tmp/s.sock")
    assert not is_loopback_peer("ipv4:10.0.0.7:5000") and not is_loopback_peer("ipv6:[fd00::1]:5000")


def test_the_comparison_takes_the_whole_header() -> None:
    """A prefix or an extension of the token is not the token."""
    interceptor = TokenInterceptor(TOKEN)
    assert interceptor.authenticated(GOOD)
    for value in (f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"bearer {TOKEN}", ""):
        assert not interceptor.authenticated((("authorization", value),))
    assert not interceptor.authenticated(None)


def test_listening_beyond_loopback_needs_a_token_or_an_explicit_opt_out() -> None:
    """0.0.0.0 without SIDECAR_AUTH_TOKEN is a config error naming the variables; a token or the opt-out allow it;
    an empty token is refused; the token never appears in the settings' repr."""
    with pytest.raises(ConfigError) as refused:
        load({"SIDECAR_LISTEN": "0.0.0.0:50051"})
    text = str(refused.value)
    assert "SIDECAR_AUTH_TOKEN" in text and "SIDECAR_ALLOW_UNAUTHENTICATED" in text and "SIDECAR_LISTEN" in text
    settings, _ = load({"SIDECAR_LISTEN": "0.0.0.0:50051", "SIDECAR_AUTH_TOKEN": TOKEN})
    assert TOKEN not in repr(settings)
    load({"SIDECAR_LISTEN": "0.0.0.0:50051", "SIDECAR_ALLOW_UNAUTHENTICATED": "true"})
    load({"SIDECAR_LISTEN": "127.0.0.1:50051"})
    with pytest.raises(ConfigError) as empty:
        load({"SIDECAR_AUTH_TOKEN": ""})
    assert "SIDECAR_AUTH_TOKEN" in str(empty.value)


def test_forward_to_entries_are_checked() -> None:
    """host:port and dns:///name:port are accepted; anything else names SIDECAR_FORWARD_TO."""
    settings, _ = load({"SIDECAR_FORWARD_TO": "10.0.0.7:50051, dns:///gw.ns.svc.cluster.local:50051"})
    assert settings.forward_to == ("10.0.0.7:50051", "dns:///gw.ns.svc.cluster.local:50051")
    for bad in ("gateway", "http://gw:50051", "gw:0", "dns:///gw"):
        with pytest.raises(ConfigError) as refused:
            load({"SIDECAR_FORWARD_TO": bad})
        assert "SIDECAR_FORWARD_TO" in str(refused.value)


def test_the_process_refuses_to_start_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    """Exit status 2 and a message naming the variables, before anything is bound."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    env.update({"SIDECAR_LISTEN": f"0.0.0.0:{free_port()}", "SIDECAR_SPOOL_DIR": str(tmp_path / "spool")})
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "SIDECAR_AUTH_TOKEN" in done.stderr and "SIDECAR_ALLOW_UNAUTHENTICATED" in done.stderr
    assert not (tmp_path / "spool").exists()
