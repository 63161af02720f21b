"""The gateway list: fixed entries, DNS names resolved again and again, a failed lookup keeping the last answer."""

from __future__ import annotations

import asyncio

from sidecar.forward.gateways import GatewayList


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
