"""Hostile input over HTTP: each case gets its documented answer quickly, and the sidecar's memory stays bounded.

The sidecar runs in-process, so ``tracemalloc`` sees every allocation its handling of a request makes.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import time
import tracemalloc

import grpc
import orjson
import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar.http_intake.parse import MAX_BATCH_BODY_BYTES
from tests.conftest import SidecarFactory
from tests.support.harness import Collectors, SidecarUnderTest

HTTP = {"SIDECAR_HTTP_LISTEN": "127.0.0.1:0"}
AUTH = "Basic " + base64.b64encode(b"wk-hostile:").decode()
TRACK = pb.TrackRequest(write_key="wk-hostile", user_id="u", event="Report Generated")


def port_of(running: SidecarUnderTest) -> int:
    """The HTTP intake's port."""
    assert running.app.http_intake is not None
    return running.app.http_intake.port


async def exchange(port: int, head: str, body: bytes = b"", *, keep_open: bool = False) -> tuple[int, dict[str, str]]:
    """Send raw request bytes and read the answer's status and JSON body (the socket may stay open meanwhile)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        answer = await reader.readexactly(int(headers["content-length"]))
        return int(status_line.split()[1]), orjson.loads(answer)
    finally:
        if not keep_open:
            writer.close()


def request_head(path: str, extra: str = "", length: int | None = None) -> str:
    """The request line and headers of a POST."""
    size = f"Content-Length: {length}\n" if length is not None else ""
    return f"POST {path} HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n{size}{extra}"


@pytest.fixture
async def running(sidecar_factory: SidecarFactory) -> SidecarUnderTest:
    """A sidecar with its HTTP intake on."""
    return await sidecar_factory(**HTTP, SIDECAR_MAX_CONCURRENT_CALLS="4")


@pytest.mark.parametrize(
    "header",
    ["Basic %%%%", "Basic " + base64.b64encode(b"\xff\xff:").decode(), "Negotiate abc", "Basic " + "A" * 6000],
)
async def test_a_bad_write_key_header_is_a_quick_400(running: SidecarUnderTest, header: str) -> None:
    """A malformed Authorization header gets 400 invalid_authorization (or the parser's own 400 when oversized)."""
    started = time.monotonic()
    status, answer = await exchange(
        port_of(running), request_head("/v1/identify", f"Authorization: {header}\n", 2), b"{}"
    )
    assert status == 400 and answer["code"] == "invalid_authorization"
    assert time.monotonic() - started < 1.0


async def test_a_gzip_bomb_is_refused_with_bounded_memory(running: SidecarUnderTest) -> None:
    """1 GiB of zeros gzipped (about 1 MB, sent in a 500 KB-limited body) and 60 MB gzipped: 400, < 4 MB peak."""
    small_bomb = gzip.compress(b"\0" * (60 * 2**20), compresslevel=9)
    assert len(small_bomb) < MAX_BATCH_BODY_BYTES
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        started = time.monotonic()
        status, answer = await exchange(
            port_of(running),
            request_head("/v1/batch", f"Authorization: {AUTH}\nContent-Encoding: gzip\n", len(small_bomb)),
            small_bomb,
        )
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 400 and answer["code"] == "request_too_large"
    assert "inflates" in answer["message"]
    assert elapsed < 2.0
    assert peak < 4 * 2**20, f"peak {peak} bytes"


async def test_deep_json_is_refused_quickly(running: SidecarUnderTest) -> None:
    """A body nested 400,000 levels is invalid JSON (400); an event nested 200 levels is refused alone."""
    port = port_of(running)
    deep = b"[" * 400_000 + b"]" * 40_000
    started = time.monotonic()
    status, answer = await exchange(port, request_head("/v1/batch", f"Authorization: {AUTH}\n", len(deep)), deep)
    assert (status, answer["code"]) == (400, "invalid_json")
    assert time.monotonic() - started < 1.0
    traits: object = 1
    for _ in range(200):
        traits = {"a": traits}
    body = orjson.dumps(
        {"batch": [{"type": "identify", "userId": "u", "traits": traits}, {"type": "identify", "userId": "v"}]}
    )
    status, answer = await exchange(port, request_head("/v1/batch", f"Authorization: {AUTH}\n", len(body)), body)
    assert (status, answer["code"], answer["accepted"]) == (400, "events_refused", 1)
    assert answer["refused"][0]["index"] == 0 and "deeper" in answer["refused"][0]["reason"]


async def test_huge_bodies_are_refused_before_they_are_read(running: SidecarUnderTest) -> None:
    """A declared 1 GB body is refused at once, unread; a chunked one is refused once it passes 500 KB."""
    port = port_of(running)
    started = time.monotonic()
    status, answer = await exchange(port, request_head("/v1/batch", f"Authorization: {AUTH}\n", 10**9), b"{")
    assert (status, answer["code"]) == (400, "request_too_large")
    assert time.monotonic() - started < 1.0
    chunk = b"%x\r\n%s\r\n" % (100_000, b" " * 100_000)
    tracemalloc.start()
    try:
        status, answer = await exchange(
            port, request_head("/v1/batch", f"Authorization: {AUTH}\nTransfer-Encoding: chunked\n"), chunk * 7
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (status, answer["code"]) == (400, "request_too_large")
    assert peak < 4 * 2**20, f"peak {peak} bytes"


async def four_slow_bodies(running: SidecarUnderTest) -> list[asyncio.Task[tuple[int, dict[str, str]]]]:
    """Four requests whose bodies trickle in (0.5 s body limit), once they hold the sidecar's four places."""
    intake = running.app.http_intake
    assert intake is not None
    intake.body_seconds = 0.5
    head = request_head("/v1/identify", f"Authorization: {AUTH}\n", 100)
    slow = [asyncio.create_task(exchange(port_of(running), head, b'{"userId"')) for _ in range(4)]
    async with asyncio.timeout(5):
        while intake.in_progress < 4:
            await asyncio.sleep(0.01)
    return slow


async def test_slow_bodies_get_408_and_do_not_hold_the_intake(running: SidecarUnderTest) -> None:
    """Bodies that trickle in get 408 after the body time limit; meanwhile the slots they hold answer 429."""
    slow = await four_slow_bodies(running)
    port = port_of(running)
    body = b'{"userId": "u"}'
    status, answer = await exchange(port, request_head("/v1/identify", f"Authorization: {AUTH}\n", len(body)), body)
    assert (status, answer["code"]) == (429, "busy")
    started = time.monotonic()
    results = await asyncio.gather(*slow)
    assert all(result[0] == 408 and result[1]["code"] == "request_timeout" for result in results)
    assert time.monotonic() - started < 2.0
    status, _ = await exchange(port, request_head("/v1/identify", f"Authorization: {AUTH}\n", len(body)), body)
    assert status == 200


async def test_slow_http_bodies_and_grpc_calls_share_one_call_limit(running: SidecarUnderTest) -> None:
    """SIDECAR_MAX_CONCURRENT_CALLS bounds both edges together: while four HTTP bodies trickle in and hold the four
    places, a gRPC call is refused RESOURCE_EXHAUSTED naming the limit; once they end, it is accepted."""
    slow = await four_slow_bodies(running)
    with pytest.raises(grpc.aio.AioRpcError) as busy:
        await running.stub.Track(TRACK, timeout=5)
    assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "SIDECAR_MAX_CONCURRENT_CALLS" in (busy.value.details() or "")
    assert [status for status, _ in await asyncio.gather(*slow)] == [408] * 4
    assert (await running.stub.Track(TRACK, timeout=5)).message_id


async def test_grpc_calls_in_progress_leave_http_requests_no_place(
    running: SidecarUnderTest, collectors: Collectors
) -> None:
    """The other way round: four Flush calls waiting for a slow Segment hold the four places, so an HTTP request is
    answered 429 busy, naming the limit; once the Flushes return, it is accepted."""
    collectors.us.faults.delay = 1.0
    await running.stub.Track(TRACK, timeout=5)
    flushes = [asyncio.ensure_future(running.stub.Flush(pb.FlushRequest(), timeout=10)) for _ in range(4)]
    async with asyncio.timeout(5):
        while running.app.call_places.taken < 4:
            await asyncio.sleep(0.01)
    body = b'{"userId": "u"}'
    head = request_head("/v1/identify", f"Authorization: {AUTH}\n", len(body))
    status, answer = await exchange(port_of(running), head, body)
    assert (status, answer["code"]) == (429, "busy")
    assert "SIDECAR_MAX_CONCURRENT_CALLS" in answer["message"]
    await asyncio.gather(*flushes)
    collectors.us.faults.delay = 0.0
    status, _ = await exchange(port_of(running), head, body)
    assert status == 200
