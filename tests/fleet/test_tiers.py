"""Two tiers with real processes: 3 edge sidecars forward by write key to 2 gateways sharing a cap through Redis.

The edges' Segment endpoints are a closed port, so every event that reaches the collector went through a gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import orjson
import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.collector.server import Collector
from sidecar.collector.store import max_requests_in_window
from sidecar.send.fleet import bound
from tests.fleet.redis_server import RedisServer
from tests.support.harness import TEST_ENV, SidecarProcess, free_port

pytestmark = pytest.mark.slow

CAP = 50
"""The issue's figures: the partner cap, 300 keys, 3 edges, 2 gateways."""
KEYS = 300
EDGES = 3
GATEWAYS = 2
EVENTS_PER_KEY_PER_EDGE = 2
EVENT_NAME = "Report Generated"


@dataclass
class Tiers:
    """The running processes, the token they share, and a stub per edge."""

    gateways: list[SidecarProcess]
    edges: list[SidecarProcess]
    token: str
    channels: list[grpc.aio.Channel]

    def edge_stub(self, index: int) -> pb_grpc.SidecarServiceStub:
        """A stub to edge ``index`` (edges need no token: they listen on loopback only)."""
        return pb_grpc.SidecarServiceStub(self.channels[index])  # type: ignore[no-untyped-call]


def gateway_env(collector: Collector, redis: RedisServer, token: str, folder: Path, index: int) -> dict[str, str]:
    """A gateway: an ordinary sidecar with Redis, a token, and the default 1 s flush interval so that the events of
    one key arriving from three edges within it leave in one request."""
    return {
        **TEST_ENV,
        "SIDECAR_FLUSH_INTERVAL": "1s",
        "SIDECAR_INTEGRATION_NAME": "tiers-test",
        "SIDECAR_ENDPOINT_US": collector.url,
        "SIDECAR_REDIS_URL": redis.url,
        "SIDECAR_FLEET_SIZE": str(GATEWAYS),
        "SIDECAR_MAX_REQUESTS_PER_SECOND": str(CAP),
        "SIDECAR_AUTH_TOKEN": token,
        "SIDECAR_SPOOL_DIR": str(folder / f"gateway{index}"),
        "SIDECAR_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
    }


def edge_env(gateways: list[SidecarProcess], token: str, folder: Path, index: int, **extra: str) -> dict[str, str]:
    """An edge: forwards to the gateways; its own Segment endpoint is a closed port (it must never be used)."""
    closed = f"http://127.0.0.1:{free_port()}"
    return {
        **TEST_ENV,
        "SIDECAR_INTEGRATION_NAME": "tiers-test",
        "SIDECAR_ENDPOINT_US": closed,
        "SIDECAR_ENDPOINT_EU": closed,
        "SIDECAR_FORWARD_TO": ",".join(gateway.address for gateway in gateways),
        "SIDECAR_FORWARD_TOKEN": token,
        "SIDECAR_FORWARD_FAILOVER_AFTER": "1s",
        "SIDECAR_SPOOL_DIR": str(folder / f"edge{index}"),
        "SIDECAR_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        **extra,
    }


@contextlib.asynccontextmanager
async def tiers(
    collector: Collector, redis: RedisServer, folder: Path, edges: int = EDGES, **edge_extra: str
) -> AsyncIterator[Tiers]:
    """``GATEWAYS`` gateway processes and ``edges`` edge processes; all killed on exit."""
    token = secrets.token_urlsafe(24)
    gateways = [
        SidecarProcess(gateway_env(collector, redis, token, folder, i), free_port(), folder / f"gateway{i}.log")
        for i in range(GATEWAYS)
    ]
    edge_processes = [
        SidecarProcess(edge_env(gateways, token, folder, i, **edge_extra), free_port(), folder / f"edge{i}.log")
        for i in range(edges)
    ]
    channels: list[grpc.aio.Channel] = []
    try:
        for process in [*gateways, *edge_processes]:
            process.start()
        for process in [*gateways, *edge_processes]:
            await process.wait_ready(timeout=45)
        channels = [grpc.aio.insecure_channel(edge.address) for edge in edge_processes]
        yield Tiers(gateways, edge_processes, token, channels)
    finally:
        for channel in channels:
            await channel.close(None)
        for process in [*gateways, *edge_processes]:
            process.ensure_stopped()


def write_key(key: int) -> str:
    """The write key of customer ``key``."""
    return f"wk-tier-{key:04d}"


async def burst(stub: pb_grpc.SidecarServiceStub, edge: int, keys: int = KEYS) -> set[str]:
    """Every key's events on this edge, in one Batch call, keys interleaved; returns the acknowledged message ids."""
    events = [
        pb.BatchEvent(track=pb.TrackRequest(write_key=write_key(key), user_id=f"user-{key}", event=EVENT_NAME,
                                            message_id=f"e{edge}-k{key}-n{n}"))
        for n in range(EVENTS_PER_KEY_PER_EDGE)
        for key in range(keys)
    ]  # fmt: skip
    reply = await stub.Batch(pb.BatchRequest(events=events), timeout=20)
    assert reply.accepted == len(events), reply.results[:3]
    return {result.message_id for result in reply.results}


async def scrape(process: SidecarProcess) -> dict[str, float]:
    """A sidecar's metrics samples, ``name{labels}`` -> value."""
    url = f"http://{process.env['SIDECAR_METRICS_LISTEN']}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_two_tiers_send_each_key_once_within_the_cap(
    redis_server: RedisServer, collector: Collector, tmp_path: Path
) -> None:
    """300 keys with events on all 3 edges: every event arrives once, <= 1.25 requests per key (per-pod delivery
    needs 3), never more than the cap plus the lease bound in a second; a call without or with a wrong token to a
    gateway is UNAUTHENTICATED; the edges' and gateways' metrics count what was forwarded and received."""
    async with tiers(collector, redis_server, tmp_path) as run:
        sent = await asyncio.gather(*(burst(run.edge_stub(i), i) for i in range(EDGES)))
        expected = set().union(*sent)
        assert len(expected) == KEYS * EDGES * EVENTS_PER_KEY_PER_EDGE
        await collector.store.wait_for_events(len(expected), timeout=40)

        async with grpc.aio.insecure_channel(run.gateways[0].address) as channel:
            stub = pb_grpc.SidecarServiceStub(channel)  # type: ignore[no-untyped-call]
            for metadata in ((), (("authorization", "Bearer not-the-token"),), (("authorization", run.token),)):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.Batch(pb.BatchRequest(), metadata=metadata, timeout=5)
                assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
                assert run.token not in (refused.value.details() or "")
            reply = await stub.Batch(pb.BatchRequest(), metadata=(("authorization", f"Bearer {run.token}"),))
            assert reply.accepted == 0

        edge_samples = [await scrape(edge) for edge in run.edges]
        gateway_samples = [await scrape(gateway) for gateway in run.gateways]
        logs = [process.read_log() for process in [*run.gateways, *run.edges]]

    arrived = collector.store.message_ids()
    assert Counter(arrived).most_common(1)[0][1] == 1, "an event arrived twice"
    assert set(arrived) == expected
    requests = collector.store.requests
    assert all(request.accepted for request in requests)
    assert len({request.write_key for request in requests}) == KEYS
    assert len(requests) <= 1.25 * KEYS, f"{len(requests)} requests for {KEYS} keys"
    busiest = collector.store.max_requests_in_window(1.0)
    assert busiest <= bound(CAP), f"{busiest} requests in one second, bound {bound(CAP)}"
    print(f"two tiers: {len(requests)} requests for {KEYS} keys, at most {busiest} in one second")
    for samples in edge_samples:
        by_gateway = [v for k, v in samples.items() if k.startswith("sidecar_forwarded_events_total{")]
        assert sum(by_gateway) == KEYS * EVENTS_PER_KEY_PER_EDGE and len(by_gateway) == GATEWAYS, by_gateway
        assert sum(v for k, v in samples.items() if k.startswith("sidecar_forward_gateways{")) == GATEWAYS
    received = [samples["sidecar_events_received_from_edges_total"] for samples in gateway_samples]
    assert sum(received) == len(expected) and min(received) > 0, received
    for log in logs:
        assert run.token not in log


async def test_a_gateway_killed_mid_burst_loses_nothing(
    redis_server: RedisServer, collector: Collector, tmp_path: Path
) -> None:
    """One gateway SIGKILLed mid-burst and restarted on its spool: every event an edge acknowledged arrives, and any
    duplicate carries the same message id (its keys fail over to the other gateway meanwhile, then come back). The
    gateways' requests stay within the cap + 20% in any one-second window around the kill and the restart, and within
    the cap before and after (docs/fleet.md, "The bound under faults")."""
    async with tiers(collector, redis_server, tmp_path) as run:
        sent = await asyncio.gather(*(burst(run.edge_stub(i), i) for i in range(EDGES)))
        expected = set().union(*sent)
        await collector.store.wait_until(lambda store: len(store.requests) >= 60, timeout=30)
        victim = run.gateways[0]
        victim.kill()
        killed_at = time.monotonic()
        # More events while it is down: acknowledged by the edges, so they must arrive too.
        late = await asyncio.gather(*(burst(run.edge_stub(i), 10 + i, keys=50) for i in range(EDGES)))
        expected |= set().union(*late)
        await collector.store.wait_until(lambda store: store.requests[-1].started_at > killed_at + 1.5, timeout=30)
        victim.start()
        await victim.wait_ready(timeout=45)
        restarted_at = time.monotonic()
        await collector.store.wait_until(lambda store: set(store.message_ids()) >= expected, timeout=45)
        edge_logs = [edge.read_log() for edge in run.edges]
        victim_log = victim.read_log()
    assert "spool_recovered" in victim_log, "the gateway was not killed with undelivered events"
    arrived = collector.store.message_ids()
    assert set(arrived) == expected, "an event no edge sent arrived"
    by_id: dict[str, set[bytes]] = {}
    for event in collector.store.events():
        by_id.setdefault(event["messageId"], set()).add(orjson.dumps({**event, "sentAt": None}))
    assert all(len(bodies) == 1 for bodies in by_id.values()), "two different events share a message id"
    assert any("batch_retry" in log for log in edge_logs), "no edge noticed the dead gateway"
    starts = [request.started_at for request in collector.store.requests]
    before = max_requests_in_window(at for at in starts if at < killed_at)
    during = max_requests_in_window(at for at in starts if killed_at - 1 <= at < restarted_at + 3)
    after = max_requests_in_window(at for at in starts if at >= restarted_at + 3)
    print(f"gateway killed: busiest window {before} before, {during} around the kill and restart, {after} after")
    assert during <= int(1.2 * CAP), f"{during} requests in one second around the kill (allowed {int(1.2 * CAP)})"
    assert max(before, after) <= CAP, f"{max(before, after)} requests in one second in steady state (cap {CAP})"


async def test_an_edge_hands_its_backlog_to_the_gateways_on_sigterm(
    redis_server: RedisServer, collector: Collector, tmp_path: Path
) -> None:
    """An edge holding a backlog (a long flush interval) is SIGTERMed: it forwards everything to the gateways
    within its grace period and exits 0 with nothing left in its spool; the gateways then deliver it."""
    grace = 15.0
    async with tiers(
        collector, redis_server, tmp_path, edges=1, SIDECAR_FLUSH_INTERVAL="10m", SIDECAR_SHUTDOWN_GRACE=f"{grace}s"
    ) as run:
        expected = await burst(run.edge_stub(0), 0)
        assert not collector.store.requests
        edge = run.edges[0]
        asked = time.monotonic()
        edge.terminate()
        status = await edge.wait_exit(timeout=grace + 10)
        took = time.monotonic() - asked
        log = edge.read_log()
        await collector.store.wait_for_events(len(expected), timeout=30)
    assert status == 0, log[-2000:]
    assert took < grace, f"the edge took {took:.1f} s, grace {grace} s"
    stopped = [orjson.loads(line) for line in log.splitlines() if '"sidecar_stopped"' in line]
    assert stopped and stopped[-1]["left_in_spool"] == 0, stopped
    assert set(collector.store.message_ids()) == expected
