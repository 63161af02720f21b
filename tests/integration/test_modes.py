"""SIDECAR_MODE as a started sidecar reports it: the `sidecar_started` line names the mode, and only a sidecar that
calls Segment itself names a cap (an edge has none: its gateways pace Segment's cap)."""

from __future__ import annotations

from structlog.testing import capture_logs

from tests.conftest import SidecarFactory
from tests.support.harness import free_port


async def test_an_edge_logs_its_mode_and_no_cap(sidecar_factory: SidecarFactory) -> None:
    """An edge's start line says mode edge and cap null; a standalone sidecar's says standalone and its cap."""
    with capture_logs() as logs:
        await sidecar_factory(SIDECAR_MODE="edge", SIDECAR_FORWARD_TO=f"127.0.0.1:{free_port()}")
        await sidecar_factory(SIDECAR_MAX_REQUESTS_PER_SECOND="40")
    started = [entry for entry in logs if entry["event"] == "sidecar_started"]
    assert [(entry["mode"], entry["cap"], entry["fleet"]) for entry in started] == [
        ("edge", None, False),
        ("standalone", 40.0, False),
    ]
