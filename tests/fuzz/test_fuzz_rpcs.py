"""Property-based fuzzing of every RPC against a real sidecar process (issue 13): random Structs and JSON bytes,
invalid UTF-8, huge and deep values, odd timestamps and mixed Batches get only documented status codes, each within a
bounded time; the sidecar keeps serving and its memory stays bounded.

Repeatable: hypothesis runs derandomized (a fixed seed per test) with a fixed number of examples, about 30 s here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import orjson
import psutil
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar._proto import sidecar_pb2 as pb
from tests.support.harness import TEST_ENV, SidecarProcess, free_port
from tests.support.wire import deep_properties, varint

pytestmark = pytest.mark.slow

EXAMPLES = 300
CALL_SECONDS = 2.0
"""The longest any one call may take (the largest ones carry 12 MiB over loopback)."""
RSS_BOUND = 512 * 2**20
DOCUMENTED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
"""The codes hostile input may get (README's error table); never UNKNOWN or INTERNAL."""

SERVICE = "/segment.sidecar.v1.SidecarService/"
REQUESTS: dict[str, type[Any]] = {
    "track": pb.TrackRequest,
    "identify": pb.IdentifyRequest,
    "page": pb.PageRequest,
    "screen": pb.ScreenRequest,
    "group": pb.GroupRequest,
    "alias": pb.AliasRequest,
}
BATCH_FIELDS = {"track": 1, "identify": 2, "page": 3, "screen": 4, "group": 5, "alias": 6}
"""BatchEvent's oneof field numbers."""
STRING_FIELDS = ("write_key", "user_id", "anonymous_id", "message_id")
OWN_STRINGS = {
    "track": ("event",),
    "page": ("name", "category"),
    "screen": ("name",),
    "group": ("group_id",),
    "alias": ("previous_id",),
}
OBJECTS = {
    "track": ("properties", "context", "integrations"),
    "identify": ("traits", "context", "integrations"),
    "page": ("properties", "context", "integrations"),
    "screen": ("properties", "context", "integrations"),
    "group": ("traits", "context", "integrations"),
    "alias": ("context", "integrations"),
}

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
huge_texts = st.sampled_from([1025, 30_000, 2**20]).map(lambda n: "x" * n)
strings = st.one_of(texts, texts, texts, huge_texts, st.sampled_from(["", "Order Completed", "Ordr Compleeted"]))

numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 2**63, -(2**63), 1e308]),
)
json_leaves = st.one_of(st.none(), st.booleans(), texts, numbers)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=20,
)


def nested_json(depth: int) -> bytes:
    """An object nested ``depth`` deep."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def json_bytes_of(value: Any) -> bytes:
    """``value`` as JSON; NaN and big integers fall back to Python's lenient encoder (invalid JSON on purpose)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        import json  # noqa: PLC0415

        return json.dumps(value).encode()


json_bytes = st.one_of(
    st.dictionaries(texts, json_values, max_size=6).map(json_bytes_of),
    json_values.map(json_bytes_of),
    st.binary(max_size=64),
    st.sampled_from([63, 64, 65, 300, 5000]).map(nested_json),
    st.sampled_from([32_000, 40_000, 12 * 2**20]).map(lambda n: b'{"a":"' + b"x" * n + b'"}'),
    st.sampled_from([b"{", b'{"a":NaN}', b'{"a":Infinity}', b"[]", b"null", b'{"a":"\xff\xfe"}']),
)


def struct_of(value: dict[str, Any], depth: int) -> struct_pb2.Struct:
    """A Struct of ``value``, wrapped ``depth`` times in ``{"a": ...}`` (protobuf decodes about 33 levels)."""
    for _ in range(depth):
        value = {"a": value}
    result = struct_pb2.Struct()
    result.update(value)
    return result


def _finite_or_any(value: Any) -> Any:
    if isinstance(value, int) and abs(value) >= 2**63:
        return float(value)
    if isinstance(value, dict):
        return {k: _finite_or_any(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_any(v) for v in value]
    return value


structs = st.builds(
    struct_of,
    st.dictionaries(texts, json_values, max_size=6).map(_finite_or_any),
    st.sampled_from([0, 0, 0, 10, 30]),
)
stamps = st.builds(
    timestamp_pb2.Timestamp,
    seconds=st.one_of(
        st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1_700_000_000, 10**17, -62_135_596_800, 253_402_300_800])
    ),
    nanos=st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(0, 999_999_999)),
)


@st.composite
def requests(draw: st.DrawFn, kind: str | None = None) -> tuple[str, Any]:
    """A random request of one of the six calls, most fields maybe set, maybe hostile."""
    kind = kind or draw(st.sampled_from(sorted(REQUESTS)))
    request = REQUESTS[kind](write_key="wk-fuzz", user_id="u1")
    for name in (*STRING_FIELDS, *OWN_STRINGS.get(kind, ())):
        if draw(st.booleans()):
            setattr(request, name, draw(strings))
    for name in OBJECTS[kind]:
        choice = draw(st.sampled_from(["none", "json", "struct", "both"]))
        if choice in ("json", "both"):
            setattr(request, f"{name}_json", draw(json_bytes))
        if choice in ("struct", "both"):
            getattr(request, name).CopyFrom(draw(structs))
    if draw(st.booleans()):
        request.timestamp.CopyFrom(draw(stamps))
    if draw(st.integers(0, 9)) == 0:
        request.region = draw(st.integers(0, 2**31 - 1))
    return kind, request


def invalid_utf8(raw: bytes, junk: bytes, field: int) -> bytes:
    """``raw`` with one more string field (tag ``field``) holding ``junk`` (made invalid UTF-8 if it was not)."""
    if not junk or junk.decode("utf-8", "replace").encode() == junk:
        junk += b"\xff"
    return raw + varint(field << 3 | 2) + varint(len(junk)) + junk


@st.composite
def unary_calls(draw: st.DrawFn) -> tuple[str, bytes]:
    """(method, request bytes) for a unary event call, sometimes with invalid UTF-8 or an undecodably deep Struct."""
    kind, request = draw(requests())
    raw = request.SerializeToString()
    mutation = draw(st.sampled_from(["none", "none", "none", "utf8", "deep"]))
    if mutation == "utf8":
        raw = invalid_utf8(raw, draw(st.binary(max_size=8)), draw(st.sampled_from([1, 3, 4, 5, 16])))
    elif mutation == "deep" and kind == "track":
        raw += deep_properties(draw(st.sampled_from([20, 40, 200])))
    return SERVICE + kind.capitalize(), raw


@st.composite
def batch_calls(draw: st.DrawFn) -> tuple[str, bytes]:
    """A mixed Batch of up to 12 events; rarely an empty slot or invalid UTF-8 inside."""
    # Built as bytes: a Struct near protobuf's depth limit inside a BatchEvent would not parse back in the client.
    raw = b""
    for _ in range(draw(st.integers(0, 12))):
        kind, request = draw(requests())
        inner = request.SerializeToString()
        if draw(st.integers(0, 15)) == 0:
            event = b""  # no call type set
        else:
            if draw(st.integers(0, 15)) == 0:
                inner = invalid_utf8(inner, draw(st.binary(max_size=4)), 3)
            event = varint(BATCH_FIELDS[kind] << 3 | 2) + varint(len(inner)) + inner
        raw += b"\x0a" + varint(len(event)) + event  # BatchRequest.events (field 1)
    return SERVICE + "Batch", raw


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SidecarProcess, grpc.Channel]]:
    """One sidecar process for the module (Segment's endpoint is a closed port: events stay spooled)."""
    folder: Path = tmp_path_factory.mktemp("fuzz")
    closed = f"http://127.0.0.1:{free_port()}"
    process = SidecarProcess(
        env={
            **TEST_ENV,
            "SIDECAR_ENDPOINT_US": closed,
            "SIDECAR_ENDPOINT_EU": closed,
            "SIDECAR_SPOOL_DIR": str(folder / "spool"),
            "SIDECAR_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
            "SIDECAR_LOG_LEVEL": "warning",
        },
        port=free_port(),
        log_path=folder / "sidecar.log",
    )
    process.start()
    channel = grpc.insecure_channel(process.address)
    try:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 30
        while True:
            assert process.process is not None and process.process.poll() is None, process.read_log()
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    break
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, process.read_log()
            time.sleep(0.05)
        yield process, channel
    finally:
        channel.close()
        process.ensure_stopped()


def call(channel: grpc.Channel, method: str, raw: bytes) -> tuple[grpc.StatusCode, bytes]:
    """Send raw bytes to ``method``; (status code, response bytes); fail a call over :data:`CALL_SECONDS`."""
    invoke = channel.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)
    started = time.perf_counter()
    try:
        reply = invoke(raw, timeout=30)
        code = grpc.StatusCode.OK
    except grpc.RpcError as error:
        reply, code = b"", error.code()  # type: ignore[attr-defined]
    took = time.perf_counter() - started
    assert took < CALL_SECONDS, f"{method} took {took:.2f} s"
    return code, reply


def assert_still_serving(process: SidecarProcess, channel: grpc.Channel) -> None:
    """Health says SERVING, a valid call succeeds, and the process's RSS is under :data:`RSS_BOUND`."""
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    valid = pb.TrackRequest(write_key="k", user_id="u", event="E").SerializeToString()
    code, _ = call(channel, SERVICE + "Track", valid)
    assert code == grpc.StatusCode.OK
    assert process.process is not None
    rss = psutil.Process(process.process.pid).memory_info().rss
    assert rss < RSS_BOUND, f"RSS {rss / 2**20:.0f} MiB"


FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def test_unary_calls_get_only_documented_codes(sidecar: tuple[SidecarProcess, grpc.Channel]) -> None:
    """Track, Identify, Page, Screen, Group and Alias answer OK, INVALID_ARGUMENT or RESOURCE_EXHAUSTED to anything,
    each within the time bound; the sidecar keeps serving within its memory bound."""
    process, channel = sidecar

    @FUZZ
    @given(unary_calls())
    def check(method_and_raw: tuple[str, bytes]) -> None:
        code, _ = call(channel, *method_and_raw)
        assert code == grpc.StatusCode.OK or code in DOCUMENTED, f"{method_and_raw[0]} answered {code.name}"

    check()
    assert_still_serving(process, channel)


def test_batches_refuse_bad_events_alone(sidecar: tuple[SidecarProcess, grpc.Channel]) -> None:
    """A mixed Batch answers OK with one result per event (each rejection INVALID_ARGUMENT), or, when the message
    itself does not decode, INVALID_ARGUMENT for the call; never another code."""
    process, channel = sidecar

    @settings(FUZZ, max_examples=80)
    @given(batch_calls())
    def check(method_and_raw: tuple[str, bytes]) -> None:
        code, reply = call(channel, *method_and_raw)
        assert code == grpc.StatusCode.OK or code in DOCUMENTED, f"Batch answered {code.name}"
        if code == grpc.StatusCode.OK:
            response = pb.BatchResponse.FromString(reply)
            sent = pb.BatchRequest()
            sent.ParseFromString(method_and_raw[1])  # the server parsed it, so it parses here too
            assert len(response.results) == len(sent.events)
            for result in response.results:
                if result.WhichOneof("result") == "rejected":
                    assert result.rejected.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], result

    check()
    assert_still_serving(process, channel)


def test_random_bytes_to_every_method(sidecar: tuple[SidecarProcess, grpc.Channel]) -> None:
    """Arbitrary bytes sent to any of the eight methods (Flush with a short deadline) get a documented code."""
    process, channel = sidecar
    methods = [SERVICE + name for name in ("Track", "Identify", "Page", "Screen", "Group", "Alias", "Batch")]

    @settings(FUZZ, max_examples=200)
    @given(st.sampled_from([*methods, SERVICE + "Flush"]), st.binary(max_size=200))
    def check(method: str, raw: bytes) -> None:
        timeout = 0.5 if method.endswith("Flush") else 30.0
        invoke = channel.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)
        try:
            invoke(raw, timeout=timeout)
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            allowed = DOCUMENTED | {grpc.StatusCode.DEADLINE_EXCEEDED} if method.endswith("Flush") else DOCUMENTED
            assert code in allowed, f"{method} answered {code.name}"

    check()
    assert_still_serving(process, channel)
