"""Start-up: ``.venv/bin/python bench/startup.py [--quick] [--rounds N]``.

How long after ``segment-sidecar serve`` starts does its health service answer SERVING, and how much CPU has the
process used by then: what a Kubernetes readiness probe waits for, and what every restart costs. Each round starts
the sidecar twice, alternating:

* ``bytecode``: as installed (``uv sync --compile-bytecode``; the image's ``deploy/docker/install.sh`` does the same);
* ``from source``: the same, but with ``PYTHONPYCACHEPREFIX`` pointing at an empty folder and
  ``PYTHONDONTWRITEBYTECODE=1`` (as the image sets it), so every module is compiled from source at every start, as it
  was before the installs compiled bytecode.

Default settings, disk spool in a fresh folder, nothing sent. Medians of the rounds, with each round's ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from bench.common import INTEGRATION_NAME, free_port, machine, table  # noqa: E402
from bench.cpu_per_event import process_cpu_seconds  # noqa: E402

SERVING = health_pb2.HealthCheckResponse.SERVING
VARIANTS = ("bytecode", "from source")


def start_once(from_source: bool) -> tuple[float, float]:
    """Start a sidecar; seconds until SERVING and its CPU seconds by then. Stopped with SIGTERM afterwards."""
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        env = {
            **os.environ,
            "SIDECAR_LISTEN": f"127.0.0.1:{port}",
            "SIDECAR_SPOOL_DIR": str(Path(folder) / "spool"),
            "SIDECAR_INTEGRATION_NAME": INTEGRATION_NAME,
            "SIDECAR_ENDPOINT_US": "http://127.0.0.1:9",  # nothing is sent
            "SIDECAR_ENDPOINT_EU": "http://127.0.0.1:9",
        }
        if from_source:
            empty = Path(folder) / "no-bytecode"
            empty.mkdir()
            env |= {"PYTHONPYCACHEPREFIX": str(empty), "PYTHONDONTWRITEBYTECODE": "1"}
        command = [str(ROOT / ".venv" / "bin" / "segment-sidecar"), "serve"]
        began = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                while True:
                    try:
                        if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == SERVING:
                            break
                    except grpc.RpcError:
                        pass
                    if process.poll() is not None or time.monotonic() - began > 60:
                        raise RuntimeError(f"the sidecar did not start (exit {process.poll()})")
                    time.sleep(0.01)
            elapsed = time.monotonic() - began
            cpu = process_cpu_seconds(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return elapsed, cpu


def main() -> None:
    """Alternate the two variants, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    print(machine())
    figures: dict[str, list[tuple[float, float]]] = {variant: [] for variant in VARIANTS}
    for _ in range(rounds):
        for variant in VARIANTS:
            figures[variant].append(start_once(variant == "from source"))
    rows = []
    for variant in VARIANTS:
        serving = [wall for wall, _ in figures[variant]]
        cpu = [used for _, used in figures[variant]]
        rows.append([variant, f"{statistics.median(serving):.2f}", f"{statistics.median(cpu):.2f}"])
    ratios = [a[0] / b[0] for a, b in zip(figures["bytecode"], figures["from source"], strict=True)]
    print(f"{rounds} rounds, variants alternated; medians")
    print(table(["variant", "seconds to SERVING", "CPU seconds by then"], rows))
    print(f"bytecode / from source, seconds to SERVING, per round: {', '.join(f'{r:.2f}' for r in ratios)}")


if __name__ == "__main__":
    main()
