"""The metrics module without a network: families, label caps, reason codes and the cost of the hot path."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from sidecar.errors import CapacityExhausted, InvalidEvent
from sidecar.metrics import MAX_TRACKED_KEYS, Metrics, dead_letter_code, is_loopback
from sidecar.model import Batch, CallType, Event, Region, SpooledEvent, write_key_hash
from sidecar.send.classify import Delivered, Permanent, Retry, Split, Unauthorized


@dataclass
class FakeSpool:
    """A spool's two counters (the only thing metrics read from it)."""

    pending_events: int = 0
    pending_bytes: int = 0


def make_metrics(spool: FakeSpool | None = None, oldest: float | None = None, write_key_series: int = 5) -> Metrics:
    """Metrics over a fixed spool view and a fixed clock (t = 1000)."""

    async def oldest_pending_at() -> float | None:
        return oldest

    return Metrics(spool or FakeSpool(), oldest_pending_at, lambda: True, lambda: 1000.0, write_key_series)


def event(key: str = "key-a", region: Region = Region.US) -> Event:
    """An accepted event."""
    return Event(key, region, "m1", b'{"type":"track"}', 990.0)


def spooled(seq: int, key: str = "key-a", region: Region = Region.US) -> SpooledEvent:
    """A spooled event accepted at t = 990."""
    return SpooledEvent(key, region, f"m{seq}", b'{"type":"track"}', 990.0, seq=seq)


async def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Render and parse every sample."""
    text = (await metrics.render()).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series_of(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> dict[str, float]:
    """write_key_hash -> value for one family."""
    return {dict(labels)["write_key_hash"]: value for (sample, labels), value in found.items() if sample == name}


async def test_ten_thousand_write_keys_cost_a_capped_number_of_series() -> None:
    """10,000 write keys produce write_key_series + 1 series, the busiest keys get theirs, and totals add up."""
    metrics = make_metrics(write_key_series=5)
    for i in range(10_000):
        metrics.accepted(event(f"key-{i}"), CallType.TRACK, ())
    busy = [f"key-{i}" for i in range(5)]
    for key in busy:
        for _ in range(10):
            metrics.accepted(event(key), CallType.TRACK, ())
    found = series_of(await samples(metrics), "sidecar_write_key_events_accepted_total")
    assert len(found) == 6
    assert set(found) == {write_key_hash(key) for key in busy} | {"other"}
    assert all(found[write_key_hash(key)] == 11 for key in busy)
    assert found["other"] == 10_050, "events from before a key's series stay in other"
    assert len(metrics._keys.counts) == 5, "unlabelled counts are forgotten once every series is taken"


async def test_every_write_key_series_only_grows() -> None:
    """A key promoted at a later scrape does not make `other` go down."""
    metrics = make_metrics(write_key_series=2)
    for key in ("a", "b"):
        metrics.accepted(event(key), CallType.TRACK, ())
    first = series_of(await samples(metrics), "sidecar_write_key_events_accepted_total")
    assert first == {write_key_hash("a"): 1, write_key_hash("b"): 1, "other": 2}
    for _ in range(3):
        metrics.accepted(event("c"), CallType.TRACK, ())
    metrics.accepted(event("a"), CallType.TRACK, ())
    second = series_of(await samples(metrics), "sidecar_write_key_events_accepted_total")
    assert second == {write_key_hash("a"): 2, write_key_hash("b"): 1, "other": 5}


async def test_tracked_keys_are_bounded_at_insertion_without_a_scrape() -> None:
    """150,000 write keys counted with no scrape in between never hold more than MAX_TRACKED_KEYS counts; the next
    scrape still gives series to the busiest keys, and `other` still counts every event from before it."""
    metrics = make_metrics(write_key_series=3)
    busiest = [f"busy-{i}" for i in range(3)]
    for key in busiest:
        for _ in range(5):
            metrics.accepted(event(key), CallType.TRACK, ())
    most = 0
    for i in range(150_000):
        metrics.accepted(event(f"key-{i}"), CallType.TRACK, ())
        most = max(most, len(metrics._keys.counts))
    assert most <= MAX_TRACKED_KEYS
    found = series_of(await samples(metrics), "sidecar_write_key_events_accepted_total")
    assert set(found) == {write_key_hash(key) for key in busiest} | {"other"}
    assert found["other"] == 150_015, "events of trimmed keys, and of keys before their series, stay in other"
    assert all(found[write_key_hash(key)] == 5 for key in busiest)


async def test_a_later_promotion_keeps_other_monotonic() -> None:
    """A key promoted at a later scrape shows all its events, and `other` keeps those it counted before."""
    metrics = make_metrics(write_key_series=2)
    metrics.accepted(event("a"), CallType.TRACK, ())
    await samples(metrics)  # a takes one series; one is still free
    metrics.accepted(event("b"), CallType.TRACK, ())
    metrics.accepted(event("b"), CallType.TRACK, ())
    found = series_of(await samples(metrics), "sidecar_write_key_events_accepted_total")
    assert found == {write_key_hash("a"): 1, write_key_hash("b"): 2, "other": 3}
    metrics.accepted(event("b"), CallType.TRACK, ())
    found = series_of(await samples(metrics), "sidecar_write_key_events_accepted_total")
    assert found == {write_key_hash("a"): 1, write_key_hash("b"): 3, "other": 3}


async def test_families_follow_the_observers() -> None:
    """Accepted, rejected, batches, retries, dead letters, parked keys and spool gauges show what was observed."""
    spool = FakeSpool(pending_events=3, pending_bytes=300)
    metrics = make_metrics(spool, oldest=940.0)
    metrics.accepted(event(), CallType.IDENTIFY, ())
    metrics.rejected(CallType.TRACK, "key-a", InvalidEvent.single("user_id", "missing"), {})
    metrics.rejected(CallType.TRACK, "key-a", CapacityExhausted("full", 1.0), {})
    us = Batch(("key-a", Region.US), [spooled(1), spooled(2)], 40)
    eu = Batch(("key-b", Region.EU), [spooled(3, "key-b", Region.EU)], 20)
    metrics.attempt_finished(us, Retry("HTTP 503", status=503), 0.2)
    metrics.attempt_finished(us, Delivered(200), 0.05)
    metrics.attempt_finished(eu, Unauthorized("HTTP 401", 401), 0.05)
    metrics.attempt_finished(eu, Split("HTTP 400", 400), 0.05)
    metrics.attempt_finished(eu, Permanent("HTTP 404", 404), 0.05)
    metrics.dead_lettered([spooled(3)], "Segment refused the batch")
    metrics.rate_limited(0.02)
    found = await samples(metrics)
    assert found[("sidecar_events_accepted_total", (("type", "identify"),))] == 1
    assert found[("sidecar_events_rejected_total", (("reason", "invalid_argument"), ("type", "track")))] == 1
    assert found[("sidecar_events_rejected_total", (("reason", "resource_exhausted"), ("type", "track")))] == 1
    assert found[("sidecar_events_delivered_total", (("region", "us"),))] == 2
    assert found[("sidecar_retries_total", (("region", "us"),))] == 1
    assert found[("sidecar_batches_total", (("outcome", "retry"), ("region", "us"), ("status", "503")))] == 1
    assert found[("sidecar_batches_total", (("outcome", "permanent"), ("region", "eu"), ("status", "404")))] == 1
    assert found[("sidecar_events_dead_lettered_total", (("reason", "refused_batch"),))] == 1
    assert found[("sidecar_parked_write_keys", ())] == 1
    assert found[("sidecar_parked_write_key", (("region", "eu"), ("write_key_hash", write_key_hash("key-b"))))] == 1
    assert found[("sidecar_spool_events", ())] == 3
    assert found[("sidecar_spool_bytes", ())] == 300
    assert found[("sidecar_spool_oldest_event_age_seconds", ())] == 60
    assert found[("sidecar_delivery_delay_seconds_sum", (("region", "us"),))] == 10
    assert found[("sidecar_delivery_latency_seconds_count", (("region", "eu"),))] == 3
    assert found[("sidecar_rate_limiter_wait_seconds_count", ())] == 1
    assert found[("sidecar_health_serving", ())] == 1
    metrics.attempt_finished(Batch(("key-b", Region.EU), [spooled(4, "key-b", Region.EU)], 20), Delivered(200), 0.01)
    assert (await samples(metrics))[("sidecar_parked_write_keys", ())] == 0


async def test_two_instances_do_not_share_state() -> None:
    """Each Metrics has its own registry: two sidecars in one process count separately."""
    first, second = make_metrics(), make_metrics()
    first.accepted(event(), CallType.TRACK, ())
    assert (await samples(first))[("sidecar_events_accepted_total", (("type", "track"),))] == 1
    assert (await samples(second))[("sidecar_events_accepted_total", (("type", "track"),))] == 0


def test_dead_letter_reasons_get_stable_codes() -> None:
    """Each of the driver's dead-letter sentences maps to its code; anything else is `other`."""
    assert dead_letter_code("write key refused (401/403) for longer than X") == "parked_too_long"
    assert dead_letter_code("not delivered within SIDECAR_MAX_EVENT_AGE") == "expired"
    assert dead_letter_code("Segment refused the event") == "refused_event"
    assert dead_letter_code("Segment refused the batch") == "refused_batch"
    assert dead_letter_code("something new") == "other"


def test_loopback_addresses_are_recognised() -> None:
    """127.x, ::1, localhost and unix sockets are loopback; wildcard and public addresses are not."""
    for listen in ("127.0.0.1:9464", "127.1.2.3:1", "[::1]:9464", "localhost:80", "unix:/tmp/x.sock"):
        assert is_loopback(listen), listen
    for listen in ("0.0.0.0:9464", "[::]:9464", "10.0.0.5:9464"):
        assert not is_loopback(listen), listen


def test_hot_path_costs_microseconds() -> None:
    """50,000 accepted events (the edge's target rate per second) are counted in well under a second of CPU."""
    metrics = make_metrics()
    events = [event(f"key-{i % 500}") for i in range(50_000)]
    started = time.process_time()
    for item in events:
        metrics.accepted(item, CallType.TRACK, ())
    elapsed = time.process_time() - started
    assert elapsed < 0.5, f"{elapsed:.3f} s of CPU for 50,000 events"


@dataclass
class Tokens:
    """An authenticator's counters, as OAuthAuthenticator keeps them."""

    token_requests: int = 7
    token_failures: int = 3
    token_refusals: int = 1
    reloads: int = 2
    reload_failures: int = 1


@dataclass
class Fleet:
    """A fleet limiter's counters, as RedisLimiter keeps them."""

    outages: int = 2
    fallback_seconds: float = 12.5
    wasted_slots: int = 4
    mode: str = "fallback"


async def test_stage_counters_are_rendered_for_the_stages_that_keep_them() -> None:
    """OAuth and fleet counters appear as their families; a stage without such counters adds nothing."""
    from sidecar.metrics import stage_collectors  # noqa: PLC0415

    metrics = make_metrics()
    collectors = stage_collectors(Tokens(), Fleet(), object())
    assert len(collectors) == 2
    metrics.watch(*collectors)
    found = await samples(metrics)
    assert found[("sidecar_oauth_token_requests_total", ())] == 7
    assert found[("sidecar_oauth_token_failures_total", ())] == 3
    assert found[("sidecar_oauth_token_refusals_total", ())] == 1
    assert found[("sidecar_oauth_credential_reloads_total", (("result", "ok"),))] == 2
    assert found[("sidecar_oauth_credential_reloads_total", (("result", "failed"),))] == 1
    assert found[("sidecar_fleet_fallback_seconds_total", ())] == 12.5
    assert found[("sidecar_fleet_outages_total", ())] == 2
    assert found[("sidecar_fleet_wasted_slots_total", ())] == 4
    modes = {dict(labels)["mode"]: v for (name, labels), v in found.items() if name == "sidecar_fleet_mode"}
    assert modes == {"redis": 0, "fallback": 1}
    bare = await samples(make_metrics())
    assert not [name for name, _ in bare if name.startswith(("sidecar_oauth", "sidecar_fleet"))]
