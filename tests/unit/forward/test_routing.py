"""Rendezvous choice and failover, tested without an event loop (the time is passed in)."""

from __future__ import annotations

from collections import Counter

from sidecar.forward.routing import Router, rendezvous_order
from sidecar.model import Region

GATEWAYS = ("10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051")


def test_every_edge_ranks_a_key_the_same_way_whatever_the_list_order() -> None:
    """The order depends on the key and the set of gateways only, so edges agree without talking."""
    for key in ("wk-a", "wk-b", "wk-c"):
        assert rendezvous_order(key, Region.US, GATEWAYS) == rendezvous_order(key, Region.US, GATEWAYS[::-1])


def test_keys_spread_evenly_and_only_a_leaving_gateways_keys_move() -> None:
    """3,000 keys spread within 15% of a third each; removing one gateway moves only the keys it had."""
    keys = [f"wk-{n}" for n in range(3000)]
    first = {key: rendezvous_order(key, Region.US, GATEWAYS)[0] for key in keys}
    counts = Counter(first.values())
    assert all(850 <= count <= 1150 for count in counts.values()), counts
    after = {key: rendezvous_order(key, Region.US, GATEWAYS[:2])[0] for key in keys}
    moved = [key for key in keys if after[key] != first[key]]
    assert moved and all(first[key] == GATEWAYS[2] for key in moved)


def test_region_is_part_of_the_key() -> None:
    """The same write key in two regions is two routing keys (some land on different gateways)."""
    keys = [f"wk-{n}" for n in range(200)]
    differ = [k for k in keys if rendezvous_order(k, Region.US, GATEWAYS) != rendezvous_order(k, Region.EU, GATEWAYS)]
    assert differ


def test_a_failing_gateway_keeps_its_keys_until_failover_after_then_they_move_and_come_back() -> None:
    """Failing for less than failover_after: same gateway. Past it: the next in the key's order, with one probe per
    probe interval to the down gateway; its first success brings the key back."""
    router = Router(failover_after=10.0, probe_interval=2.0)
    router.set_gateways(GATEWAYS)
    order = rendezvous_order("wk-a", Region.US, GATEWAYS)
    assert router.choose("wk-a", Region.US, 0.0) == order[0]
    router.failed(order[0], 1.0)
    router.failed(order[0], 5.0)  # still failing since 1.0
    assert router.choose("wk-a", Region.US, 10.9) == order[0]
    assert router.down(order[0], 11.0)
    assert router.choose("wk-a", Region.US, 11.0) == order[0]  # the probe
    assert router.choose("wk-a", Region.US, 11.5) == order[1]
    assert router.choose("wk-a", Region.US, 12.9) == order[1]
    assert router.choose("wk-a", Region.US, 13.0) == order[0]  # the next probe
    router.succeeded(order[0])
    assert not router.down(order[0], 14.0)
    assert router.choose("wk-a", Region.US, 14.0) == order[0]


def test_with_every_gateway_down_a_key_stays_with_its_first_choice() -> None:
    """Nowhere better to go: the first of the rendezvous order."""
    router = Router(failover_after=1.0, probe_interval=100.0)
    router.set_gateways(GATEWAYS)
    for gateway in GATEWAYS:
        router.choose("wk-a", Region.US, 0.0)
        router.failed(gateway, 0.0)
    for _ in GATEWAYS:
        router.choose("wk-a", Region.US, 5.0)  # uses up each gateway's probe
    assert router.choose("wk-a", Region.US, 6.0) == rendezvous_order("wk-a", Region.US, GATEWAYS)[0]


def test_a_new_list_keeps_the_state_of_gateways_that_stay() -> None:
    """Re-resolving DNS must not reset a failing gateway's clock; an empty list chooses nothing."""
    router = Router(failover_after=1.0, probe_interval=100.0)
    assert router.choose("wk-a", Region.US, 0.0) is None
    router.set_gateways(GATEWAYS)
    router.failed(GATEWAYS[0], 0.0)
    assert router.set_gateways([*GATEWAYS, "10.0.0.4:50051"])
    assert not router.set_gateways([*GATEWAYS, "10.0.0.4:50051"])
    assert router.down(GATEWAYS[0], 2.0)
