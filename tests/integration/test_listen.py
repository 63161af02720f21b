"""SIDECAR_LISTEN also takes a unix socket, for sidecars that share a pod's filesystem instead of its loopback."""

from __future__ import annotations

from pathlib import Path

import grpc

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.app import Sidecar
from sidecar.config import load
from tests.support.harness import TEST_ENV, Collectors


async def test_serves_on_a_unix_socket(collectors: Collectors, tmp_path: Path) -> None:
    """A call over `unix:/path` is accepted and its event delivered."""
    socket_path = tmp_path / "sidecar.sock"
    settings, _ = load(
        {
            **TEST_ENV,
            **collectors.env(),
            "SIDECAR_LISTEN": f"unix:{socket_path}",
            "SIDECAR_SPOOL_DIR": str(tmp_path / "spool"),
        }
    )
    app = Sidecar(settings)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
            stub = pb_grpc.SidecarServiceStub(channel)
            reply = await stub.Track(pb.TrackRequest(write_key="wk", user_id="u", event="Report Generated"))
            await stub.Flush(pb.FlushRequest(), timeout=10)
    finally:
        await app.stop(grace=0)
    assert collectors.us.store.message_ids("wk") == [reply.message_id]
