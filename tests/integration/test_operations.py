"""Operations over real sockets: /metrics after real traffic, gRPC health and reflection with real clients, and no
full write key in any log line, metric or debugger page."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from prometheus_client.parser import text_string_to_metric_families

from sidecar._proto import sidecar_pb2 as pb
from sidecar.model import write_key_hash
from tests.conftest import SidecarFactory
from tests.support.harness import TEST_ENV, Collectors, SidecarProcess, SidecarUnderTest, free_port, held_flush

KEY = "wk-operations-live-0123456789"
KEY_REVOKED = "wk-operations-revoked-9876543210"
OPS_ENV = {"SIDECAR_METRICS_LISTEN": "127.0.0.1:0"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a text exposition, keyed by (sample name, sorted labels)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and wanted <= set(have))


async def scrape(port: int) -> str:
    """GET /metrics."""
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


def track(key: str, user: str = "u1", event: str = "Report Generated", **fields: Any) -> pb.TrackRequest:
    """A track request."""
    return pb.TrackRequest(write_key=key, user_id=user, event=event, **fields)


async def send_traffic(running: SidecarUnderTest, collectors: Collectors) -> int:
    """Valid, invalid, Spec-refused, batched, parked, dead-lettered and refused-while-draining events; returns how
    many events were sent."""
    collectors.us.faults.revoked_write_keys.add(KEY_REVOKED)
    collectors.us.faults.reject_message_ids.add("poison-1")
    stub = running.stub
    for i in range(5):
        await stub.Track(track(KEY, user=f"u{i}"))
    await stub.Identify(pb.IdentifyRequest(write_key=KEY, user_id="u1", traits_json=b'{"plan":"pro"}'))
    await stub.Track(track(KEY, message_id="poison-1"))
    for request in (track(KEY, user=""), track(KEY, event="email open")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Track(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reply = await stub.Batch(
        pb.BatchRequest(
            events=[
                pb.BatchEvent(track=track(KEY, user="b1")),
                pb.BatchEvent(page=pb.PageRequest(write_key=KEY, user_id="b2", name="Pricing")),
                pb.BatchEvent(track=track(KEY, user="")),
                pb.BatchEvent(),
                pb.BatchEvent(track=track(KEY_REVOKED, user="r1")),
                pb.BatchEvent(track=track(KEY_REVOKED, user="r2")),
            ]
        )
    )
    assert (reply.accepted, reply.rejected) == (4, 2)
    running.app.servicer.accepting = False  # as during a drain: refused whole, UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Track(track(KEY))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    running.app.servicer.accepting = True
    flushed = await stub.Flush(pb.FlushRequest(), timeout=15)
    assert flushed.parked == 2
    return 5 + 1 + 1 + 2 + 6 + 1


async def test_metrics_add_up_after_real_traffic(sidecar_factory: SidecarFactory, collectors: Collectors) -> None:
    """After real traffic, received = accepted + rejected and accepted = delivered + dead-lettered + spooled."""
    running = await sidecar_factory(**OPS_ENV)
    assert running.app.metrics_server is not None
    sent = await send_traffic(running, collectors)
    samples = parse(await scrape(running.app.metrics_server.port))

    received = total(samples, "sidecar_events_received_total")
    accepted = total(samples, "sidecar_events_accepted_total")
    rejected = total(samples, "sidecar_events_rejected_total")
    delivered = total(samples, "sidecar_events_delivered_total")
    dead = total(samples, "sidecar_events_dead_lettered_total")
    spooled = total(samples, "sidecar_spool_events")
    assert received == sent == 16
    assert received == accepted + rejected
    assert accepted == delivered + dead + spooled
    assert (accepted, rejected, delivered, dead, spooled) == (11, 5, 8, 1, 2)
    assert running.app.dispatcher.delivered == delivered
    assert running.app.spool.pending_events == spooled

    assert total(samples, "sidecar_events_accepted_total", type="page") == 1
    assert total(samples, "sidecar_events_rejected_total", type="track", reason="invalid_argument") == 3
    assert total(samples, "sidecar_events_rejected_total", type="unknown", reason="invalid_argument") == 1
    assert total(samples, "sidecar_events_rejected_total", type="track", reason="unavailable") == 1
    assert total(samples, "sidecar_events_dead_lettered_total", reason="refused_event") == 1
    assert total(samples, "sidecar_batches_total", status="200", outcome="delivered") >= 1
    assert total(samples, "sidecar_batches_total", status="400", outcome="split") >= 1
    assert total(samples, "sidecar_batches_total", status="401", outcome="unauthorized") >= 1
    assert total(samples, "sidecar_parked_write_keys") == 1
    assert total(samples, "sidecar_parked_write_key", write_key_hash=write_key_hash(KEY_REVOKED), region="us") == 1
    assert total(samples, "sidecar_spool_bytes") > 0
    assert total(samples, "sidecar_spool_oldest_event_age_seconds") > 0
    assert total(samples, "sidecar_delivery_latency_seconds_count", region="us") >= 3
    assert total(samples, "sidecar_delivery_delay_seconds_count", region="us") >= 1
    assert total(samples, "sidecar_rate_limiter_wait_seconds_count") >= 3
    assert total(samples, "sidecar_write_key_events_accepted_total", write_key_hash=write_key_hash(KEY)) == 9
    assert total(samples, "sidecar_health_serving") == 1


async def test_calls_refused_before_the_servicer_are_counted(sidecar_factory: SidecarFactory) -> None:
    """Calls refused by the interceptors count under their code, so received = accepted + rejected still holds and
    an alert on ``reason="resource_exhausted"`` fires when the sidecar is busy: one without the token
    (unauthenticated), one that does not decode (invalid_argument), one past SIDECAR_MAX_CONCURRENT_CALLS while a
    Flush waits (resource_exhausted)."""
    running = await sidecar_factory(
        **OPS_ENV,
        SIDECAR_AUTH_TOKEN="s3cret-token-for-ops",
        SIDECAR_MAX_CONCURRENT_CALLS="1",
        SIDECAR_ENDPOINT_US=f"http://127.0.0.1:{free_port()}",  # nothing listens: the Flush below waits
    )
    assert running.app.metrics_server is not None
    authorized = (("authorization", "Bearer s3cret-token-for-ops"),)
    stub = running.stub
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Track(track(KEY))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    raw_track = running.channel.unary_unary(
        "/segment.sidecar.v1.SidecarService/Track", request_serializer=bytes, response_deserializer=bytes
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await raw_track(b"\x82\x01\x02\xff\xfe", metadata=authorized)  # event (field 16): invalid UTF-8
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await stub.Track(track(KEY), metadata=authorized)
    flush = asyncio.ensure_future(held_flush(stub, authorized))
    try:
        deadline = time.monotonic() + 10
        busy: grpc.StatusCode | None = None
        while busy is None:
            assert time.monotonic() < deadline, "no call was refused while the Flush held the only place"
            try:
                await stub.Track(track(KEY), metadata=authorized)
            except grpc.aio.AioRpcError as error:
                busy = error.code()
            await asyncio.sleep(0.02)
    finally:
        flush.cancel()
    assert busy == grpc.StatusCode.RESOURCE_EXHAUSTED
    samples = parse(await scrape(running.app.metrics_server.port))
    received = total(samples, "sidecar_events_received_total", rpc="Track")
    accepted = total(samples, "sidecar_events_accepted_total")
    assert received == accepted + total(samples, "sidecar_events_rejected_total")
    for reason in ("unauthenticated", "invalid_argument", "resource_exhausted"):
        assert total(samples, "sidecar_events_rejected_total", type="track", reason=reason) == 1, reason


async def test_retries_are_counted(sidecar_factory: SidecarFactory, collectors: Collectors) -> None:
    """A 429 answer counts as a retry and as a batch with status 429; the event is then delivered."""
    running = await sidecar_factory(**OPS_ENV)
    assert running.app.metrics_server is not None
    collectors.us.faults.throttle_next = 1
    collectors.us.faults.retry_after = 0
    await running.stub.Track(track(KEY))
    await running.stub.Flush(pb.FlushRequest(), timeout=15)
    samples = parse(await scrape(running.app.metrics_server.port))
    assert total(samples, "sidecar_retries_total", region="us") == 1
    assert total(samples, "sidecar_batches_total", status="429", outcome="retry") == 1
    assert total(samples, "sidecar_events_delivered_total") == 1


async def health_status(port: int, service: str = "") -> int:
    """The health service's answer for ``service``, from a real gRPC client."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return int(reply.status)


async def test_health_follows_spool_writability(sidecar_factory: SidecarFactory, tmp_path: Path) -> None:
    """Health answers NOT_SERVING once the spool folder cannot be written, and SERVING again once it can."""
    running = await sidecar_factory()
    app = running.app
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert await health_status(app.port) == serving
    assert await health_status(app.port, "segment.sidecar.v1.SidecarService") == serving

    spool_dir = app.settings.spool_dir
    moved = tmp_path / "moved-spool"
    spool_dir.rename(moved)  # the open database follows its inode; the folder's path is now a plain file
    spool_dir.write_text("not a folder")
    try:
        assert await app.check_health() is False
        assert await health_status(app.port) == not_serving
        assert app.spool_problem
    finally:
        spool_dir.unlink()
        moved.rename(spool_dir)
    assert await app.check_health() is True
    assert await health_status(app.port) == serving


async def test_health_is_not_serving_while_draining(sidecar_factory: SidecarFactory, collectors: Collectors) -> None:
    """From the moment a drain starts, health answers NOT_SERVING while the gRPC server still runs."""
    running = await sidecar_factory()
    collectors.us.faults.down = True  # nothing gets delivered, so the drain uses its whole grace period
    await running.stub.Track(track(KEY))
    stopping = asyncio.create_task(running.app.stop(grace=3))
    deadline = time.monotonic() + 3
    status = health_pb2.HealthCheckResponse.SERVING
    while status == health_pb2.HealthCheckResponse.SERVING and time.monotonic() < deadline:
        status = await health_status(running.app.port)
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert not stopping.done()
    await stopping


async def test_reflection_describes_the_services(sidecar: SidecarUnderTest) -> None:
    """grpcio-reflection's own client (v1alpha) lists the sidecar, health and both reflection services and resolves
    their messages."""

    def describe() -> tuple[list[str], list[str], str]:
        with grpc.insecure_channel(f"127.0.0.1:{sidecar.app.port}") as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            services = sorted(database.get_services())
            from google.protobuf.descriptor_pool import DescriptorPool  # noqa: PLC0415

            pool = DescriptorPool(database)
            service = pool.FindServiceByName("segment.sidecar.v1.SidecarService")
            track_input = service.FindMethodByName("Track").input_type.full_name
            return services, [m.name for m in service.methods], track_input

    services, methods, track_input = await asyncio.to_thread(describe)
    assert services == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "segment.sidecar.v1.SidecarService",
    ]
    assert {"Track", "Identify", "Page", "Screen", "Group", "Alias", "Batch", "Flush"} <= set(methods)
    assert track_input == "segment.sidecar.v1.TrackRequest"


async def read_debugger_stream(port: int, until: list[str], timeout: float = 10.0) -> str:
    """Read the debugger's SSE stream until every string in ``until`` appeared; return what was read."""
    seen = ""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.get(f"http://127.0.0.1:{port}/events") as response,
    ):
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for chunk in response.content.iter_any():
            seen += chunk.decode()
            if all(text in seen for text in until):
                return seen
    raise AssertionError(f"stream ended before showing {until}: {seen[-2000:]}")


async def test_no_full_write_key_in_logs_metrics_or_debugger(collectors: Collectors, tmp_path: Path) -> None:
    """A sidecar process's JSON log, its /metrics and its debugger page and stream never hold a write key in full."""
    collectors.us.faults.revoked_write_keys.add(KEY_REVOKED)
    collectors.us.faults.reject_message_ids.add("poison-1")
    metrics_port, debugger_port = free_port(), free_port()
    process = SidecarProcess(
        env={
            **TEST_ENV,
            **collectors.env(),
            "SIDECAR_SPOOL_DIR": str(tmp_path / "spool"),
            "SIDECAR_LOG_LEVEL": "debug",
            "SIDECAR_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
            "SIDECAR_DEBUGGER_LISTEN": f"127.0.0.1:{debugger_port}",
        },
        port=free_port(),
        log_path=tmp_path / "sidecar.log",
    )
    process.start()
    try:
        await process.wait_ready()
        async with grpc.aio.insecure_channel(process.address) as channel:
            from sidecar._proto import sidecar_pb2_grpc as pb_grpc  # noqa: PLC0415

            stub = pb_grpc.SidecarServiceStub(channel)  # type: ignore[no-untyped-call]
            await stub.Track(track(KEY))
            await stub.Track(track(KEY, message_id="poison-1"))
            await stub.Track(track(KEY_REVOKED))
            for bad in (track(KEY, user=""), track(KEY_REVOKED, event="email open")):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.Track(bad)
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            flushed = await stub.Flush(pb.FlushRequest(), timeout=15)
            assert flushed.parked == 1 and flushed.dead_lettered == 1
        metrics = await scrape(metrics_port)
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{debugger_port}/") as page:
            html = await page.text()
        stream = await read_debugger_stream(debugger_port, ['"kind":"dead_lettered"', '"suggestion":"Email Opened"'])
        process.terminate()
        assert await process.wait_exit(timeout=30) == 0
    finally:
        process.ensure_stopped()
    log = process.read_log()
    lines = [orjson.loads(line) for line in log.splitlines() if line.strip()]
    names = {line["event"] for line in lines}
    expected = {"sidecar_started", "batch_delivered", "write_key_parked", "events_dead_lettered", "sidecar_stopped"}
    assert expected <= names
    for key in (KEY, KEY_REVOKED):
        hashed = write_key_hash(key)
        assert hashed in log and hashed in metrics and hashed in stream
        for where, text in (("log", log), ("metrics", metrics), ("page", html), ("stream", stream)):
            assert key not in text, f"the write key appears in full in the {where}"
            assert key[:16] not in text, f"a long prefix of the write key appears in the {where}"


async def test_debugger_is_off_by_default_and_metrics_off_with_off(sidecar: SidecarUnderTest) -> None:
    """With SIDECAR_METRICS_LISTEN=off (the test harness sets it) and no SIDECAR_DEBUGGER_LISTEN only gRPC listens."""
    assert sidecar.app.metrics is None and sidecar.app.metrics_server is None
    assert sidecar.app.debugger is None


async def test_debugger_warns_when_not_loopback(sidecar_factory: SidecarFactory) -> None:
    """A debugger bound to a wildcard address logs a warning naming the risk."""
    from structlog.testing import capture_logs  # noqa: PLC0415

    with capture_logs() as logs:
        running = await sidecar_factory(SIDECAR_DEBUGGER_LISTEN="0.0.0.0:0")
    assert running.app.debugger is not None and running.app.debugger.port > 0
    assert any(entry["event"] == "debugger_not_loopback" for entry in logs)


def test_probe_file_is_removed(tmp_path: Path) -> None:
    """The writability probe leaves nothing behind in the spool folder, and names the problem when it fails."""
    from sidecar.app import probe_writable  # noqa: PLC0415

    assert probe_writable(tmp_path) is None
    assert list(tmp_path.iterdir()) == []
    shutil.rmtree(tmp_path)
    assert probe_writable(tmp_path) is not None
