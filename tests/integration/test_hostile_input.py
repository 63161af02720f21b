"""Hostile input against a real sidecar process (issue 13, points 2, 3, 5, 6, 7): every refusal is a documented
status, costs about what reading the request costs, and never stalls the other callers."""

from __future__ import annotations

import asyncio
import gc
import string
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import psutil
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.collector.server import Collector
from tests.conftest import SidecarFactory, rpc_error
from tests.support.harness import (
    TEST_ENV,
    SidecarProcess,
    field_violations,
    free_port,
    held_flush,
    ready,
    retry_delay,
)
from tests.support.wire import deep_properties

pytestmark = pytest.mark.slow

BASE = {"write_key": "wk-hostile", "user_id": "u1"}
TRACK = "/segment.sidecar.v1.SidecarService/Track"


def make_process(tmp_path: Path, endpoint: str, **env: str) -> SidecarProcess:
    """A sidecar process pointed at ``endpoint``, on a free port."""
    return SidecarProcess(
        env={
            **TEST_ENV,
            "SIDECAR_ENDPOINT_US": endpoint,
            "SIDECAR_ENDPOINT_EU": endpoint,
            "SIDECAR_SPOOL_DIR": str(tmp_path / "spool"),
            "SIDECAR_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
            **env,
        },
        port=free_port(),
        log_path=tmp_path / "sidecar.log",
    )


@pytest.fixture
async def process(collector: Collector, tmp_path: Path) -> AsyncIterator[SidecarProcess]:
    """A ready sidecar process delivering to the collector."""
    running = make_process(tmp_path, collector.url)
    async with ready(running):
        yield running


def rss(process: SidecarProcess) -> int:
    """The process's resident memory in bytes."""
    assert process.process is not None
    return int(psutil.Process(process.process.pid).memory_info().rss)


async def refused(call: object, timeout: float = 10.0) -> tuple[grpc.StatusCode, list[tuple[str, str]], float]:
    """Await a call expected to fail: its code, field violations and the seconds it took."""
    started = time.perf_counter()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call, timeout)  # type: ignore[arg-type]
    error = rpc_error(caught.value)
    return error.code(), field_violations(error), time.perf_counter() - started


async def test_huge_names_and_json_are_refused_cheaply_without_stalling_others(process: SidecarProcess) -> None:
    """A 30,000-character and an 8 MiB event name and a 12 MiB properties_json are INVALID_ARGUMENT on their field
    within 0.5 s each (main: 1.2 s and 904 MiB, 3.9 s, 1.6 s), small calls sent meanwhile keep answering within
    0.5 s; over three rounds the process's memory grows by less than 256 MiB (buffers for the 12 MiB messages).

    Whether anything is *kept* is asserted by the in-process test below: RSS cannot tell (glibc keeps freed 8-12 MiB
    buffers in per-thread arenas; over 50 rounds RSS wanders up by 100-230 MiB and flattens there, with swings of
    40 MiB between rounds, so a bound on growth between rounds failed CI at 69 MiB with nothing leaking)."""
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)
        await stub.Track(pb.TrackRequest(**BASE, event="Warm Up"), timeout=5)
        before = rss(process)
        worst_small = 0.0
        stop = asyncio.Event()

        async def small_calls() -> None:
            nonlocal worst_small
            while not stop.is_set():
                started = time.perf_counter()
                await stub.Track(pb.TrackRequest(**BASE, event="Report Generated"), timeout=10)
                worst_small = max(worst_small, time.perf_counter() - started)
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(small_calls())
        try:
            cases = [
                (pb.TrackRequest(**BASE, event="Order " + (string.ascii_lowercase * 1200)[:30_000]), "event"),
                (pb.TrackRequest(**BASE, event="x" * (8 * 2**20)), "event"),
                (pb.TrackRequest(**BASE, event="E", properties_json=b'{"a":"' + b"x" * (12 * 2**20) + b'"}'), None),
            ]
            for _ in range(3):
                for request, field in cases:
                    code, violations, took = await refused(stub.Track(request, timeout=10))
                    assert code == grpc.StatusCode.INVALID_ARGUMENT
                    assert [f for f, _ in violations] == [field or "properties_json"]
                    assert took < 0.5, f"refusing took {took:.2f} s"
        finally:
            stop.set()
            await ticker
        assert worst_small < 0.5, f"a small call waited {worst_small:.2f} s"
        after = rss(process)
        assert after - before < 256 * 2**20, f"RSS grew by {(after - before) / 2**20:.0f} MiB"


async def test_refused_huge_inputs_leave_nothing_behind(sidecar_factory: SidecarFactory) -> None:
    """With the debugger on, three more rounds of refused huge inputs (a 30,000-character and an 8 MiB event name, a
    12 MiB properties_json, a 1 MiB write key) leave less than 1 MiB more Python memory than one round did: no name
    cache, debugger entry, metric label or log keeps any of them (keeping one 8 MiB name per round would be 24 MiB).
    tracemalloc counts live Python objects, so the allocator's caching of freed buffers does not blur it."""
    running = await sidecar_factory(SIDECAR_DEBUGGER_LISTEN="127.0.0.1:0")
    huge_json = b'{"a":"' + b"x" * (12 * 2**20) + b'"}'
    cases = [
        (pb.TrackRequest(**BASE, event="Order " + (string.ascii_lowercase * 1200)[:30_000]), "event"),
        (pb.TrackRequest(**BASE, event="x" * (8 * 2**20)), "event"),
        (pb.TrackRequest(**BASE, event="E", properties_json=huge_json), "properties_json"),
        (pb.TrackRequest(write_key="k" * 2**20, user_id="u1", event="E"), "write_key"),
    ]

    async def one_round() -> None:
        for request, field in cases:
            code, violations, _ = await refused(running.stub.Track(request, timeout=10))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert [f for f, _ in violations] == [field]

    await one_round()  # fills what is filled once: caches of ordinary size, lazily made objects
    tracemalloc.start()
    try:
        await one_round()
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            await one_round()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert grown < 2**20, f"three rounds of refused input kept {grown / 2**20:.1f} MiB"


async def test_a_16_mib_batch_of_large_structs_lets_other_calls_through(process: SidecarProcess) -> None:
    """A Batch of 268 events whose 62 KB Structs each grow past 32 KB once encoded (half a second of checking here) is
    answered event by event, and a caller sending one small call after another meanwhile gets at least 5 answers
    while it is checked (9-11 here): the Batch pauses every 2 ms. Before, it held the event loop throughout, and the
    caller got 1 answer. (Decoding the 16 MiB request still holds the loop for 0.1-0.2 s: gRPC decodes it in one go.)"""
    properties = struct_pb2.Struct()
    for n in range(1200):
        properties[f"k{n}"] = "v" * 40
    item = pb.BatchEvent(track=pb.TrackRequest(**BASE, event="Report Generated", properties=properties))
    big = pb.BatchRequest(events=[item] * ((16 * 2**20 - 4096) // (item.ByteSize() + 4)))
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)
        await stub.Track(pb.TrackRequest(**BASE, event="Warm Up"), timeout=5)
        answered_during = 0
        batch_done = asyncio.Event()

        async def small_calls() -> None:
            nonlocal answered_during
            while not batch_done.is_set():
                await stub.Track(pb.TrackRequest(**BASE, event="Report Generated"), timeout=10)
                answered_during += not batch_done.is_set()
                await asyncio.sleep(0.005)

        batch = asyncio.ensure_future(stub.Batch(big, timeout=30))
        ticker = asyncio.create_task(small_calls())
        try:
            reply = await batch
        finally:
            batch_done.set()
            await ticker
    assert (reply.accepted, reply.rejected) == (0, len(big.events))
    assert all("32" in result.rejected.reason for result in reply.results), reply.results[0]
    assert answered_during >= 5, f"only {answered_during} small calls were answered while the Batch was checked"


async def test_out_of_range_timestamps_are_refused_alone(process: SidecarProcess, collector: Collector) -> None:
    """seconds=1e17, year 1 and out-of-range nanos are INVALID_ARGUMENT on ``timestamp``; in a 1,000-event Batch only
    that event is refused and the others are delivered with valid ISO-8601 timestamps (main: INTERNAL, whole Batch)."""
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)
        for seconds, nanos in ((10**17, 0), (-62_135_596_800, 0), (1_700_000_000, -1), (1_700_000_000, 10**9)):
            stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
            code, violations, _ = await refused(stub.Track(pb.TrackRequest(**BASE, event="E", timestamp=stamp)))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert [f for f, _ in violations] == ["timestamp"]
        events = [
            pb.BatchEvent(
                track=pb.TrackRequest(
                    **BASE,
                    event="E",
                    message_id=f"ts-{n}",
                    timestamp=timestamp_pb2.Timestamp(seconds=10**17 if n == 500 else 1_700_000_000 + n),
                )
            )
            for n in range(1000)
        ]
        reply = await stub.Batch(pb.BatchRequest(events=events), timeout=10)
        assert (reply.accepted, reply.rejected) == (999, 1)
        assert reply.results[500].rejected.field_violations[0].field == "timestamp"
        await stub.Flush(pb.FlushRequest(), timeout=20)
    stamps = [event["timestamp"] for event in collector.store.events() if event["messageId"].startswith("ts-")]
    assert len(stamps) == 999
    assert all(len(stamp) == 24 and stamp.startswith("2023-11-") and stamp.endswith("Z") for stamp in stamps)


async def test_deep_json_is_refused_and_the_limit_is_delivered(process: SidecarProcess, collector: Collector) -> None:
    """properties_json nested 256 and 1,024 deep is INVALID_ARGUMENT (main: accepted, then unwritable by orjson);
    64 levels are accepted and delivered."""
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)
        for depth in (65, 256, 1024):
            deep = b'{"a":' * depth + b"1" + b"}" * depth
            code, violations, _ = await refused(stub.Track(pb.TrackRequest(**BASE, event="E", properties_json=deep)))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert [f for f, _ in violations] == ["properties_json"]
        ok = b'{"a":' * 63 + b"1" + b"}" * 63
        await stub.Track(pb.TrackRequest(**BASE, event="E", message_id="deep-64", properties_json=ok), timeout=5)
        await stub.Flush(pb.FlushRequest(), timeout=20)
    assert "deep-64" in collector.store.message_ids()


def struct_with(value: object) -> struct_pb2.Struct:
    """A Struct holding ``{"v": value}``."""
    result = struct_pb2.Struct()
    result.update({"v": value})
    return result


async def test_nan_invalid_utf8_and_undecodable_structs_are_invalid_argument(process: SidecarProcess) -> None:
    """NaN/Infinity in a Struct, invalid UTF-8 in a string field and a Struct deeper than protobuf decodes answer
    INVALID_ARGUMENT with a field violation (main: NaN sent as null, UNKNOWN for the bytes)."""
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)
        for number in (float("nan"), float("inf"), float("-inf")):
            request = pb.TrackRequest(**BASE, event="E", properties=struct_with(number))
            code, violations, _ = await refused(stub.Track(request))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert [f for f, _ in violations] == ["properties.v"]
        raw_track = channel.unary_unary(TRACK, request_serializer=bytes, response_deserializer=bytes)
        valid = pb.TrackRequest(**BASE).SerializeToString()
        for junk in (
            b"\x82\x01\x02\xff\xfe",  # event (field 16): invalid UTF-8
            b"\x1a\x03\xc3\x28\x41",  # user_id: an invalid two-byte sequence
            b"\x82\x01\x10abc",  # a string field cut short
        ):
            code, violations, _ = await refused(raw_track(valid + junk, timeout=5))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert [f for f, _ in violations] == ["request"]
        code, violations, _ = await refused(raw_track(valid + deep_properties(40), timeout=5))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        reply = await stub.Track(pb.TrackRequest(**BASE, event="Still Serving"), timeout=5)
        assert reply.message_id


async def first_error(stub: pb_grpc.SidecarServiceStub, deadline: float) -> grpc.aio.AioRpcError:
    """Send small calls until one fails (the flushes are in progress); fail the test at ``deadline``."""
    while time.monotonic() < deadline:
        try:
            await stub.Track(pb.TrackRequest(**BASE, event="Probe"), timeout=5)
        except grpc.aio.AioRpcError as error:
            return error
        await asyncio.sleep(0.02)
    raise AssertionError("no call was refused while the limit was reached")


async def first_success(stub: pb_grpc.SidecarServiceStub, deadline: float) -> bool:
    """Send small calls until one succeeds; only RESOURCE_EXHAUSTED may answer before then."""
    codes: set[grpc.StatusCode] = set()
    while time.monotonic() < deadline:
        try:
            await stub.Track(pb.TrackRequest(**BASE, event="After"), timeout=5)
        except grpc.aio.AioRpcError as error:
            codes.add(error.code())
            await asyncio.sleep(0.02)
            continue
        assert codes <= {grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
        return True
    return False


async def test_oversized_messages_and_too_many_calls_are_resource_exhausted(
    collector: Collector, tmp_path: Path
) -> None:
    """A message over 17 MiB is RESOURCE_EXHAUSTED from gRPC; past SIDECAR_MAX_CONCURRENT_CALLS a call is
    RESOURCE_EXHAUSTED with a RetryInfo delay while health still answers, and calls succeed again once the others
    end (main: no bound on calls in progress)."""
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: flushes wait
    running = make_process(tmp_path, closed, SIDECAR_MAX_CONCURRENT_CALLS="2")
    async with ready(running), grpc.aio.insecure_channel(running.address) as channel:
        stub = pb_grpc.SidecarServiceStub(channel)
        big = pb.BatchRequest(
            events=[pb.BatchEvent(track=pb.TrackRequest(**BASE, event="E", properties_json=b"1" * 2**20))] * 18
        )
        code, _, _ = await refused(stub.Batch(big, timeout=10))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        await stub.Track(pb.TrackRequest(**BASE, event="Pending"), timeout=5)
        flushes = [asyncio.ensure_future(held_flush(stub)) for _ in range(2)]
        busy = await first_error(stub, deadline=time.monotonic() + 10)
        assert busy.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        delay = retry_delay(busy)
        assert delay is not None and delay > 0
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        for flush in flushes:
            flush.cancel()
        assert await first_success(stub, deadline=time.monotonic() + 10), "calls stayed refused"
