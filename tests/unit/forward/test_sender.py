"""The forwarding sender against real in-process gateways: what each answer of a gateway becomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar._proto import sidecar_pb2 as pb
from sidecar.app import Sidecar
from sidecar.config import load
from sidecar.enrich.enricher import Enricher
from sidecar.forward.metrics import ForwardMetrics
from sidecar.forward.sender import ForwardingSender
from sidecar.model import Batch, Event, Region
from sidecar.send.classify import Delivered, PartlyRejected, Retry
from tests.support.harness import TEST_ENV, Collectors, SidecarUnderTest, free_port, start_sidecar
from tests.unit.forward.test_convert import enrich

TOKEN = "tier-secret-1"


@pytest.fixture
async def gateway(collectors: Collectors, tmp_path: Path) -> AsyncIterator[SidecarUnderTest]:
    """An in-process gateway with a token, strict Spec mode."""
    running = await start_sidecar(collectors, tmp_path / "gateway", {"SIDECAR_AUTH_TOKEN": TOKEN})
    try:
        yield running
    finally:
        await running.close()


def events(*names: str) -> list[Event]:
    """Enriched track events as an edge holds them, one per name."""
    enricher = Enricher("acme-mail", "1.0.0")
    made = []
    for seq, name in enumerate(names, 1):
        item = pb.BatchEvent(track=pb.TrackRequest(write_key="wk-1", user_id="u", event=name))
        event = enrich(item, enricher)
        event.seq = seq
        made.append(event)
    return made


def batch(items: list[Event]) -> Batch:
    """One batch of wk-1 (US)."""
    return Batch(("wk-1", Region.US), items, sum(len(e.payload) + 1 for e in items))


async def test_accepted_partly_rejected_and_refused_token(gateway: SidecarUnderTest) -> None:
    """All accepted -> Delivered; a Spec near-miss -> PartlyRejected at its index with the gateway's reason; a wrong
    token -> Retry (nothing lost); the metrics count per gateway."""
    address = f"127.0.0.1:{gateway.app.port}"
    metrics = ForwardMetrics()
    sender = ForwardingSender((address,), TOKEN, 5.0, 10.0, 10.0, metrics)
    wrong = ForwardingSender((address,), "not-it", 5.0, 10.0, 10.0)
    await sender.start()
    await wrong.start()
    try:
        assert await sender.send(batch(events("Report Generated", "Report Shared"))) == Delivered(200, gateway=address)
        outcome = await sender.send(batch(events("Report Generated", "App Launched", "Report Shared")))
        assert isinstance(outcome, PartlyRejected)
        assert [index for index, _ in outcome.rejected] == [1]
        assert "Application Opened" in outcome.rejected[0][1]
        refused = await wrong.send(batch(events("Report Generated")))
        assert isinstance(refused, Retry) and "UNAUTHENTICATED" in refused.reason
    finally:
        await sender.stop()
        await wrong.stop()
        await sender.stop()
    samples = {m.name: m for m in metrics.collect()}
    assert samples["sidecar_forwarded_events"].samples[0].value == 4
    assert samples["sidecar_forwarded_batches"].samples[0].value == 2


async def test_unreachable_and_full_gateways_are_retried_with_retry_info(
    collectors: Collectors, tmp_path: Path
) -> None:
    """Nobody listening -> Retry, counted as a failure of that gateway; a gateway whose spool is full -> Retry
    after its RetryInfo delay. Stop is safe without start."""
    await ForwardingSender(("127.0.0.1:1",), None, 1.0, 1.0, 1.0).stop()
    metrics = ForwardMetrics()
    address = f"127.0.0.1:{free_port()}"
    unreachable = ForwardingSender((address,), TOKEN, 2.0, 10.0, 10.0, metrics)
    await unreachable.start()
    try:
        outcome = await unreachable.send(batch(events("Report Generated")))
        assert isinstance(outcome, Retry) and "UNAVAILABLE" in outcome.reason
    finally:
        await unreachable.stop()
    failures = next(m for m in metrics.collect() if m.name == "sidecar_forward_failures")
    assert [(s.labels, s.value) for s in failures.samples] == [({"gateway": address, "code": "unavailable"}, 1)]
    settings, _ = load(
        {
            **TEST_ENV,
            **collectors.env(),
            "SIDECAR_LISTEN": "127.0.0.1:0",
            "SIDECAR_SPOOL_DIR": str(tmp_path / "full"),
            "SIDECAR_AUTH_TOKEN": TOKEN,
        }
    )
    # A spool bound of 10 bytes (below what the settings accept: never anything but full).
    full = Sidecar(settings.model_copy(update={"spool_max_bytes": 10}))
    await full.start()
    sender = ForwardingSender((f"127.0.0.1:{full.port}",), TOKEN, 5.0, 10.0, 10.0)
    await sender.start()
    try:
        outcome = await sender.send(batch(events("Report Generated")))
        assert isinstance(outcome, Retry) and "RESOURCE_EXHAUSTED" in outcome.reason
        assert outcome.after is not None and outcome.after > 0
    finally:
        await sender.stop()
        await full.stop(grace=0)


async def test_keys_fail_over_to_the_next_gateway_after_failover_after(
    gateway: SidecarUnderTest, collectors: Collectors
) -> None:
    """With the key's first gateway dead, attempts go to it (Retry) until failover_after, then to the live one."""
    live = f"127.0.0.1:{gateway.app.port}"
    dead = f"127.0.0.1:{free_port()}"
    sender = ForwardingSender((live, dead), TOKEN, 2.0, 0.3, 10.0)
    await sender.start()
    try:
        key = next(f"wk-{n}" for n in range(100) if sender.router.choose(f"wk-{n}", Region.US, 0.0) == dead)
        items = events("Report Generated")
        for event in items:
            event.write_key = key
        first = await sender.send(Batch((key, Region.US), items, 100))
        assert isinstance(first, Retry)
        async with asyncio.timeout(10):
            while not isinstance(outcome := await sender.send(Batch((key, Region.US), items, 100)), Delivered):
                assert isinstance(outcome, Retry)
                await asyncio.sleep(0.05)  # the edge's backoff between attempts
    finally:
        await sender.stop()
    await gateway.stub.Flush(pb.FlushRequest(), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10)
    assert collectors.us.store.message_ids(key) == [items[0].message_id]
