"""The gateway list: fixed entries, DNS names resolved again and again, a failed lookup keeping the last answer."""

from __future__ import annotations

import asyncio

from sidecar.forward.gateways import GatewayList
from sidecar.tasks import Supervision


class Resolver:
    """A scripted DNS: answers from a table the test edits; a name missing from it fails like NXDOMAIN."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.lookups = 0
        self.asked = asyncio.Event()

    async def __call__(self, name: str, port: int) -> list[str]:
        """The records of ``name`` (raises OSError when there are none)."""
        self.lookups += 1
        self.asked.set()
        if name not in self.records:
            raise OSError(f"{name}: not found")
        return list(self.records[name])


async def test_fixed_and_resolved_entries_are_merged_sorted_and_re_resolved() -> None:
    """host:port entries stay; dns:/// names expand to address:port; a later answer replaces the list."""
    resolver = Resolver()
    resolver.records["gw.ns.svc"] = ["10.0.0.9", "10.0.0.2"]
    seen: list[tuple[str, ...]] = []
    gateways = GatewayList(["gw-fixed:7000", "dns:///gw.ns.svc:50051"], 0.01, seen.append, resolver)
    await gateways.start()
    try:
        assert gateways.current == ("10.0.0.2:50051", "10.0.0.9:50051", "gw-fixed:7000")
        resolver.records["gw.ns.svc"] = ["10.0.0.2", "fd00::1"]
        async with asyncio.timeout(5):
            while gateways.current != ("10.0.0.2:50051", "[fd00::1]:50051", "gw-fixed:7000"):
                resolver.asked.clear()
                await resolver.asked.wait()
        # A lookup that fails keeps the last answer: a DNS hiccup must not empty the list.
        del resolver.records["gw.ns.svc"]
        before = resolver.lookups
        async with asyncio.timeout(5):
            while resolver.lookups < before + 2:
                resolver.asked.clear()
                await resolver.asked.wait()
        assert gateways.current == ("10.0.0.2:50051", "[fd00::1]:50051", "gw-fixed:7000")
    finally:
        await gateways.stop()
        await gateways.stop()
    assert seen[0] == ("10.0.0.2:50051", "10.0.0.9:50051", "gw-fixed:7000") and len(seen) == 2


async def test_stop_without_start_and_a_static_list_start_no_task() -> None:
    """Lifecycle: stop is safe without start; a list with no DNS name needs no background task."""
    seen: list[tuple[str, ...]] = []
    gateways = GatewayList(["b:1", "a:1"], 1.0, seen.append)
    await gateways.stop()
    await gateways.start()
    assert seen == [("a:1", "b:1")]
    await gateways.stop()


async def test_a_resolver_loop_that_raises_is_reported_restarted_and_cleared() -> None:
    """A lookup that raises something other than OSError (a resolver bug) does not end re-resolving silently: the
    unit ``forward.resolver`` is reported (health NOT_SERVING), the loop is restarted, and once lookups work again
    the problem is cleared and the new answer used."""
    resolver = Resolver()
    resolver.records["gw.ns.svc"] = ["10.0.0.1"]
    changes: list[dict[str, str]] = []
    supervision = Supervision(on_change=lambda: changes.append(supervision.problems))
    gateways = GatewayList(["dns:///gw.ns.svc:50051"], 0.01, lambda _: None, resolver, supervision=supervision)
    broken = asyncio.Event()

    async def buggy(name: str, port: int) -> list[str]:
        if not broken.is_set():
            broken.set()
            raise ValueError("a bug in the resolver")
        return await resolver(name, port)

    await gateways.start()
    try:
        gateways._lookup = buggy
        resolver.records["gw.ns.svc"] = ["10.0.0.7"]
        async with asyncio.timeout(10):
            while gateways.current != ("10.0.0.7:50051",) or supervision.problems:
                resolver.asked.clear()
                await resolver.asked.wait()
        assert changes[0] == {"forward.resolver": "ValueError"} and changes[-1] == {}
        assert supervision.units() == {"forward.resolver": True}
    finally:
        await gateways.stop()
    assert supervision.units() == {"forward.resolver": False}
