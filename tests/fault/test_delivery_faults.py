"""Delivery under faults, with a real sidecar process: parked keys with backlogs, a full disk under the spool, a
``Retry-After`` that is not a number, a redirect to another origin. Delivery goes on after each fault, nothing
acknowledged is lost, health says NOT_SERVING while delivery cannot go on, and Flush answers by its deadline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
import orjson
import pytest
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.collector.server import Collector
from sidecar.model import write_key_hash
from tests.fault.conftest import ProcessFactory, Traffic, assert_no_loss_and_clean_duplicates, wait_delivered
from tests.support.harness import TEST_ENV, SidecarProcess, free_port

pytestmark = pytest.mark.slow
CAP = 50


async def health_status(address: str) -> int:
    """The sidecar's health status (grpc.health.v1), for the empty service name."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        return int(reply.status)


async def wait_health(address: str, status: int, timeout: float) -> None:
    """Poll health until it reports ``status``, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = await health_status(address)
        if seen == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"health stayed {seen}, wanted {status}")


async def test_thirty_parked_keys_with_backlogs_leave_a_healthy_key_delivering(
    collector: Collector, sidecar_process: ProcessFactory
) -> None:
    """30 revoked keys with ~0.5 MB of backlog each are probed, not held: a healthy key still delivers everything,
    Flush reports the parked events by key, and the revoked keys cost one probe each per park period."""
    revoked = [f"wk-revoked-{i:02d}" for i in range(30)]
    collector.faults.revoked_write_keys.update(revoked)
    process = sidecar_process(SIDECAR_PARKED_RETRY_INTERVAL="60s")
    process.start()
    await process.wait_ready()
    parked_traffic = Traffic(process.address, revoked, batch_size=500)
    await parked_traffic.run(60)
    healthy = Traffic(process.address, ["wk-healthy"], batch_size=50)
    await healthy.run(10, pause=0.05)
    assert len(parked_traffic.acknowledged) == 30_000 and len(healthy.acknowledged) == 500
    await wait_delivered(collector, healthy.acknowledged, timeout=30)
    async with grpc.aio.insecure_channel(process.address) as channel:
        flushed = await pb_grpc.SidecarServiceStub(channel).Flush(pb.FlushRequest(), timeout=20)
    assert flushed.parked == 30_000
    assert sorted(flushed.parked_write_key_hashes) == sorted(write_key_hash(k) for k in revoked)
    probes = [r for r in collector.store.requests if r.write_key in set(revoked)]
    assert len(probes) <= 2 * len(revoked)
    assert await health_status(process.address) == health_pb2.HealthCheckResponse.SERVING
    assert_no_loss_and_clean_duplicates(collector, healthy.acknowledged, CAP)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs mounted for the spool (needs root; skipped otherwise), unmounted afterwards."""
    mount = tmp_path / "tiny-disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def wait_metric(port: int, prefix: str, needle: str, timeout: float) -> str:
    """Poll /metrics until a sample line starting with ``prefix`` and holding ``needle`` appears; return it."""
    deadline = time.monotonic() + timeout
    while True:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
        lines = [line for line in text.splitlines() if line.startswith(prefix) and needle in line]
        if lines:
            return lines[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {prefix}...{needle} sample in /metrics")
        await asyncio.sleep(0.1)


def fill(path: Path) -> None:
    """Write zeros to ``path`` until the disk is full (a disk the spool already filled fails at the open: full too)."""
    with contextlib.suppress(OSError), path.open("wb") as filler:
        chunk = b"\0" * 65536
        while True:
            filler.write(chunk)
            filler.flush()
            os.fsync(filler.fileno())


async def test_a_full_disk_under_the_spool_pauses_delivery_and_it_resumes_after(
    collector: Collector, tiny_disk: Path, tmp_path: Path
) -> None:
    """With the spool's disk full, delivery cannot remove what Segment accepted: health turns NOT_SERVING, Flush
    answers DEADLINE_EXCEEDED by its deadline; once space is back, delivery resumes and every acknowledged event
    arrives (duplicates only with the same message id), and health is SERVING again."""
    collector.faults.down = True
    metrics_port = free_port()
    process = SidecarProcess(
        env={
            **TEST_ENV,
            "SIDECAR_ENDPOINT_US": collector.url,
            "SIDECAR_ENDPOINT_EU": collector.url,
            "SIDECAR_SPOOL_DIR": str(tiny_disk / "spool"),
            # The spool's bound fits the volume, so that the filler below, not the spool, is what fills it.
            "SIDECAR_SPOOL_MAX_BYTES": "8MiB",
            "SIDECAR_LOG_LEVEL": "info",
            "SIDECAR_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        },
        port=free_port(),
        log_path=tmp_path / "sidecar.log",
    )
    process.start()
    try:
        await process.wait_ready()
        traffic = Traffic(process.address, ["wk-disk-a", "wk-disk-b", "wk-disk-c"], batch_size=100)
        await traffic.run(30)
        assert len(traffic.acknowledged) == 3_000
        await asyncio.to_thread(fill, tiny_disk / "filler")
        collector.faults.down = False
        await wait_health(process.address, health_pb2.HealthCheckResponse.NOT_SERVING, timeout=15)
        blocked = await wait_metric(metrics_port, "sidecar_delivery_blocked{", 'unit="delivery.spool_write"', 15)
        assert blocked.endswith(" 1.0")
        started = time.monotonic()
        async with grpc.aio.insecure_channel(process.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await pb_grpc.SidecarServiceStub(channel).Flush(pb.FlushRequest(), timeout=2)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 4
        (tiny_disk / "filler").unlink(missing_ok=True)
        await wait_delivered(collector, traffic.acknowledged, timeout=60)
        await wait_health(process.address, health_pb2.HealthCheckResponse.SERVING, timeout=15)
        async with grpc.aio.insecure_channel(process.address) as channel:
            flushed = await pb_grpc.SidecarServiceStub(channel).Flush(pb.FlushRequest(), timeout=20)
        assert flushed.parked == 0
        assert_no_loss_and_clean_duplicates(collector, traffic.acknowledged, CAP)
        log = process.read_log()
        assert "spool_write_failed" in log and "task_recovered" in log
        process.terminate()
        assert await process.wait_exit(timeout=30) == 0
    finally:
        process.ensure_stopped()


@dataclass
class OddServer:
    """A Segment stand-in that misbehaves in ways the collector does not: ``answer`` builds each response."""

    answer: Callable[[OddServer, bytes], web.Response]
    requests: int = 0
    accepted: list[str] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        """Count the request and answer it."""
        self.requests += 1
        return self.answer(self, await request.read())

    def accept(self, body: bytes) -> web.Response:
        """Record the batch's message ids and answer 200."""
        self.accepted.extend(event["messageId"] for event in orjson.loads(body)["batch"])
        return web.json_response({"success": True})

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()


@contextlib.asynccontextmanager
async def odd_server(answer: Callable[[OddServer, bytes], web.Response]) -> AsyncIterator[OddServer]:
    """A started :class:`OddServer`, stopped at the end."""
    server = OddServer(answer)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def odd_sidecar(tmp_path: Path, url: str) -> SidecarProcess:
    """A sidecar process pointed at ``url`` for both regions."""
    return SidecarProcess(
        env={
            **TEST_ENV,
            "SIDECAR_ENDPOINT_US": url,
            "SIDECAR_ENDPOINT_EU": url,
            "SIDECAR_SPOOL_DIR": str(tmp_path / "spool"),
            "SIDECAR_LOG_LEVEL": "info",
        },
        port=free_port(),
        log_path=tmp_path / "sidecar.log",
    )


async def test_a_retry_after_that_float_refuses_is_a_plain_retry(tmp_path: Path) -> None:
    """A 503 with ``Retry-After: ²`` (a digit to str.isdigit, not to float) neither kills delivery nor health:
    the batch is retried with backoff and everything arrives."""

    def answer(server: OddServer, body: bytes) -> web.Response:
        if server.requests <= 5:
            return web.Response(status=503, headers={"Retry-After": "\u00b2"})
        return server.accept(body)

    async with odd_server(answer) as server:
        process = odd_sidecar(tmp_path, server.url)
        process.start()
        try:
            await process.wait_ready()
            traffic = Traffic(process.address, ["wk-odd-a", "wk-odd-b"], batch_size=50)
            await traffic.run(4)
            deadline = time.monotonic() + 20
            while not traffic.acknowledged <= set(server.accepted) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert traffic.acknowledged <= set(server.accepted)
            assert server.requests > 5
            assert await health_status(process.address) == health_pb2.HealthCheckResponse.SERVING
            assert "task_failed" not in process.read_log()
        finally:
            process.ensure_stopped()


async def test_a_redirect_to_another_origin_is_not_followed(tmp_path: Path) -> None:
    """A 307 pointing elsewhere is a failed attempt: the other origin never sees a request (nor the body), and the
    events are delivered once the endpoint answers again."""
    async with (
        odd_server(lambda server, body: server.accept(body)) as elsewhere,
        odd_server(
            lambda server, body: (
                web.Response(status=307, headers={"Location": f"{elsewhere.url}/v1/batch"})
                if server.requests <= 4
                else server.accept(body)
            )
        ) as endpoint,
    ):
        process = odd_sidecar(tmp_path, endpoint.url)
        process.start()
        try:
            await process.wait_ready()
            traffic = Traffic(process.address, ["wk-redirected"], batch_size=20)
            await traffic.run(2)
            deadline = time.monotonic() + 20
            while not traffic.acknowledged <= set(endpoint.accepted) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert traffic.acknowledged <= set(endpoint.accepted)
            assert endpoint.requests > 4
            assert elsewhere.requests == 0
        finally:
            process.ensure_stopped()


async def test_flush_answers_by_its_deadline_while_nothing_can_be_delivered(
    collector: Collector, sidecar_process: ProcessFactory
) -> None:
    """Segment down: Flush answers DEADLINE_EXCEEDED with the pending count at its deadline, never later."""
    collector.faults.down = True
    process = sidecar_process()
    process.start()
    await process.wait_ready()
    traffic = Traffic(process.address, ["wk-flush"], batch_size=10)
    await traffic.run(1)
    started = time.monotonic()
    async with grpc.aio.insecure_channel(process.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pb_grpc.SidecarServiceStub(channel).Flush(pb.FlushRequest(), timeout=1.5)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "10 events still waiting" in (raised.value.details() or "")
    assert time.monotonic() - started < 3
