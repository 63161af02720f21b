"""/metrics as a deployment meets it: on by default (loopback), off with `off`, a taken port is exit 2 naming the
variable, and the delivery stages' own counters (the fleet limiter's fallback) exported by a real scrape."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from sidecar.config import load
from sidecar.http_endpoint import is_loopback
from tests.conftest import SidecarFactory
from tests.support.harness import TEST_ENV, free_port


def test_metrics_listen_defaults_to_loopback_9464_and_off_turns_it_off() -> None:
    """Unset, /metrics listens on 127.0.0.1:9464 (loopback only); `off` in any case turns it off."""
    settings, _ = load({})
    assert settings.metrics_listen == "127.0.0.1:9464" and is_loopback(settings.metrics_listen)
    for value in ("off", "OFF", " Off "):
        settings, _ = load({"SIDECAR_METRICS_LISTEN": value})
        assert settings.metrics_listen is None, value


def test_a_taken_metrics_port_is_exit_2_naming_the_variable(tmp_path: object) -> None:
    """A sidecar process whose metrics port is taken exits 2 before serving, naming SIDECAR_METRICS_LISTEN."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **TEST_ENV,
            "PATH": "/usr/bin:/bin",
            "SIDECAR_SPOOL": "memory",
            "SIDECAR_LISTEN": f"127.0.0.1:{free_port()}",
            "SIDECAR_METRICS_LISTEN": f"127.0.0.1:{port}",
        }
        result = subprocess.run(
            [sys.executable, "-m", "sidecar", "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert result.returncode == 2, result.stderr
    assert "SIDECAR_METRICS_LISTEN" in result.stderr and f"127.0.0.1:{port}" in result.stderr


async def test_fleet_fallback_counters_are_exported(sidecar_factory: SidecarFactory) -> None:
    """With Redis unreachable the fleet limiter falls back; a scrape shows the outage, its seconds and the mode."""
    running = await sidecar_factory(
        SIDECAR_METRICS_LISTEN="127.0.0.1:0", SIDECAR_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    assert running.app.metrics_server is not None
    url = f"http://127.0.0.1:{running.app.metrics_server.port}/metrics"
    deadline = time.monotonic() + 10
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(url) as response:
                text = await response.text()
            samples = {
                (s.name, tuple(s.labels.items())): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            if samples.get(("sidecar_fleet_outages_total", ())):
                break
            assert time.monotonic() < deadline, text
            await asyncio.sleep(0.05)
    assert samples[("sidecar_fleet_mode", (("mode", "fallback"),))] == 1
    assert samples[("sidecar_fleet_mode", (("mode", "redis"),))] == 0
    assert ("sidecar_fleet_wasted_slots_total", ()) in samples
    # The current outage counts: a later scrape shows more fallback seconds.
    first = samples[("sidecar_fleet_fallback_seconds_total", ())]
    limiter_seconds = getattr(running.app.limiter, "fallback_seconds", 0.0)
    assert limiter_seconds >= first
