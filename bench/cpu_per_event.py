"""CPU per event, side by side: ``.venv/bin/python bench/cpu_per_event.py [--quick] [--events N] [--rounds R]``.

The question a partner asks before putting the sidecar beside its service instead of embedding Segment's library:
how much CPU does each event cost, in my process and in the sidecar? One scenario for every side (contract-notes,
"CPU per event"): N track events of about 300 bytes with 10 properties, one write key, sent as fast as the caller
can, then flushed.

Partners (each a process of its own; its CPU is its own ``getrusage`` user + system, all threads, from just before
the first event until its flush returned, so interpreter or JVM start-up is not counted, but JIT warm-up is):

* ``analytics-python``: segment-analytics-python, ``upload_size=1000``, sending to the local collector;
* ``python``: this project's Python client, its ``Batcher``;
* ``go``, ``node``, ``java``: the other clients with their batching helpers (bench/cpu/), skipped with a printed reason
  when the toolchain or a build is missing.

The sidecar's own CPU per event (``/proc/<pid>/stat`` before and after, so its start-up is not counted) is measured
for the same events sent three ways: ``Track`` calls (8 in flight), ``Batch`` calls (the Python Batcher) and, where
the sidecar has one, the HTTP intake (analytics-python pointed at it). Each sidecar uses its defaults (disk spool)
and delivers to the local collector; its figure runs until the sidecar's Flush returned, so delivery is counted.

With ``--base DIR`` (a checkout of an earlier commit: ``git worktree add DIR <commit>``), the Python client and the
sidecar sides run a second time from that tree, as ``python@base``, ``sidecar-track@base`` and ``sidecar-http@base``,
alternating with this tree's within each round: a before/after in one run.

Rounds alternate the sides (``--rounds``, 3 by default) and the table gives each side's median, with the ratios to
analytics-python computed within each round and then their median: the machine is shared, and absolute
microseconds move with its load (the load average is printed with the figures).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import queue
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))  # the Python client, as a partner imports it

from bench.common import WRITE_KEY, CollectorProcess, machine, sidecar, table  # noqa: E402

EVENT_NAME = "Email Opened"
PROPERTIES = {
    "campaign_id": "cmp_2026_11_spring",
    "email_id": "em_000000123456",
    "email_subject": "Spring sale",
    "list_id": "lst_42",
    "link_count": 3,
    "opened_on": "mobile",
    "first_open": True,
    "send_hour": 9,
    "template": "promo-v2",
    "variant": "b",
}
"""Ten properties; with the user id and the event name the track call is about 300 bytes of JSON."""
TICKS = os.sysconf("SC_CLK_TCK")
PARTNER_TIMEOUT = 900.0


def cpu_seconds() -> float:
    """User + system CPU of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of another process so far, from /proc (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def user_id(index: int) -> str:
    """The user id of event number ``index``."""
    return f"user-{index % 100_000:06d}"


# ---------------------------------------------------------------------------------------------------------------
# Partners in Python (spawned processes; each puts (cpu_seconds, events) on ``out``)


def _partner_analytics_python(host: str, events: int, out: Any, client_src: str | None = None) -> None:
    """segment-analytics-python as a partner embeds it: track, flush."""
    import logging  # noqa: PLC0415

    from segment.analytics import Client  # noqa: PLC0415

    logging.getLogger("segment").setLevel(logging.CRITICAL)
    client = Client(WRITE_KEY, host=host, upload_size=1000, max_queue_size=events + 1)
    started = cpu_seconds()
    for index in range(events):
        client.track(user_id=user_id(index), event=EVENT_NAME, properties=PROPERTIES)
    client.flush()
    out.put((cpu_seconds() - started, events))
    client.shutdown()


def _partner_python_client(address: str, events: int, out: Any, client_src: str | None = None) -> None:
    """This project's Python client with its Batcher: add every event, flush the batcher."""
    if client_src is not None:
        sys.path.insert(0, client_src)
    from segment_sidecar_client import Batcher, Client, Track  # noqa: PLC0415

    with Client(address, write_key=WRITE_KEY) as client:
        started = cpu_seconds()
        with Batcher(client, max_events=1000, max_queue=20_000) as batcher:
            for index in range(events):
                batcher.add(Track(user_id=user_id(index), event=EVENT_NAME, properties=PROPERTIES))
            batcher.flush()
        out.put((cpu_seconds() - started, events))


def _partner_python_track(address: str, events: int, out: Any, client_src: str | None = None) -> None:
    """Track calls, 8 in flight, from an AsyncClient (the sidecar's per-call path)."""
    if client_src is not None:
        sys.path.insert(0, client_src)
    import asyncio  # noqa: PLC0415

    from segment_sidecar_client import AsyncClient, Track  # noqa: PLC0415

    async def run() -> None:
        async with AsyncClient(address, write_key=WRITE_KEY) as client:
            started = cpu_seconds()
            indexes = iter(range(events))

            async def worker() -> None:
                for index in indexes:
                    await client.send(Track(user_id=user_id(index), event=EVENT_NAME, properties=PROPERTIES))

            await asyncio.gather(*(worker() for _ in range(8)))
            out.put((cpu_seconds() - started, events))

    asyncio.run(run())


def run_python_partner(
    target: Callable[[str, int, Any, str | None], None], where: str, events: int, tree: Path = ROOT
) -> float:
    """Run one Python partner in a spawned process; its CPU seconds."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    client_src = None if tree == ROOT else str(tree / "clients" / "python" / "src")
    process = context.Process(target=target, args=(where, events, out, client_src))
    process.start()
    deadline = time.monotonic() + PARTNER_TIMEOUT
    while True:
        with contextlib.suppress(queue.Empty):
            seconds, _ = out.get(timeout=1.0)
            break
        if not process.is_alive() or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the partner {target.__name__} ended without a figure (exit {process.exitcode})")
    process.join()
    return float(seconds)


# ---------------------------------------------------------------------------------------------------------------
# Partners in the other languages (bench/cpu/*): each prints "cpu_seconds=<float>" once it has flushed.

CPU_DIR = ROOT / "bench" / "cpu"
CLIENT_SIDES = ("python", "go", "node", "java")
"""The sides whose partner is one of this project's clients (ratios to analytics-python are given for these)."""


@dataclass
class ExternalPartner:
    """A partner program in another language: how to build it once and how to run it."""

    name: str
    tool: str
    build: list[str] | None
    run: list[str]
    cwd: Path

    def missing(self) -> str | None:
        """Why it cannot run here, or None."""
        if shutil.which(self.tool) is None:
            return f"{self.tool} is not installed"
        return None


def external_partners() -> list[ExternalPartner]:
    """The Go, Node.js and Java partners."""
    node_dir = ROOT / "clients" / "node"
    java_dir = ROOT / "clients" / "java"
    return [
        ExternalPartner("go", "go", ["go", "build", "-o", "partner", "."], ["./partner"], CPU_DIR / "go"),
        ExternalPartner(
            "node",
            "node",
            None,
            ["node", str(CPU_DIR / "node" / "partner.mjs"), str(node_dir)],
            node_dir,
        ),
        ExternalPartner(
            "java",
            "mvn",
            ["mvn", "-q", "-B", "-DskipTests", "package"],
            ["java", "-cp", "__CLASSPATH__", "CpuPartner"],
            java_dir,
        ),
    ]


def java_classpath() -> str:
    """The Java client's jar and its dependencies, plus the compiled partner (built on first use)."""
    java_dir = ROOT / "clients" / "java"
    cp_file = CPU_DIR / "java" / "classpath.txt"
    subprocess.run(
        ["mvn", "-q", "-B", "dependency:build-classpath", f"-Dmdep.outputFile={cp_file}"],
        cwd=java_dir,
        check=True,
    )
    jars = sorted((java_dir / "target").glob("*.jar"))
    classpath = ":".join([*(str(jar) for jar in jars if "sources" not in jar.name), cp_file.read_text().strip()])
    out_dir = CPU_DIR / "java" / "classes"
    out_dir.mkdir(exist_ok=True)
    subprocess.run(
        ["javac", "-d", str(out_dir), "-cp", classpath, str(CPU_DIR / "java" / "CpuPartner.java")],
        check=True,
    )
    return f"{out_dir}:{classpath}"


def prepare_external(partner: ExternalPartner) -> str | None:
    """Build the partner once; why it cannot run, or None."""
    problem = partner.missing()
    if problem is not None:
        return problem
    try:
        if partner.name == "node" and not (partner.cwd / "node_modules").exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=partner.cwd, check=True)
        if partner.name == "node":  # always: a dist/ left from an earlier checkout would measure that one
            subprocess.run(["npm", "run", "build", "--silent"], cwd=partner.cwd, check=True)
        if partner.build is not None:
            subprocess.run(partner.build, cwd=partner.cwd, check=True, capture_output=True)
        if partner.name == "java":
            partner.run = [part.replace("__CLASSPATH__", java_classpath()) for part in partner.run]
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"build failed: {exc}"
    return None


def run_external(partner: ExternalPartner, address: str, events: int) -> float:
    """Run a built partner; its CPU seconds as it reports them."""
    env = {**os.environ, "SIDECAR_ADDRESS": address, "BENCH_EVENTS": str(events), "BENCH_WRITE_KEY": WRITE_KEY}
    done = subprocess.run(
        partner.run, cwd=partner.cwd, env=env, capture_output=True, text=True, timeout=PARTNER_TIMEOUT, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("cpu_seconds="):
            return float(line.split("=", 1)[1])
    raise RuntimeError(f"{partner.name} partner printed no cpu_seconds: {done.stdout[-500:]} {done.stderr[-2000:]}")


# ---------------------------------------------------------------------------------------------------------------
# The sidecar's side


@contextlib.contextmanager
def measured_sidecar(
    collector: CollectorProcess, http: bool = False, tree: Path = ROOT
) -> Iterator[tuple[str, int, str | None]]:
    """A sidecar on its defaults delivering to ``collector``: (gRPC address, pid, HTTP intake URL or None)."""
    env = {"SIDECAR_ENDPOINT_US": collector.url, "SIDECAR_ENDPOINT_EU": collector.url}
    http_url = None
    if http:
        from bench.common import free_port  # noqa: PLC0415

        port = free_port()
        env["SIDECAR_HTTP_LISTEN"] = f"127.0.0.1:{port}"
        http_url = f"http://127.0.0.1:{port}"
    with sidecar(env, root=tree) as server:
        yield server.address, server.pid, http_url


def flush_sidecar(address: str) -> None:
    """Call the sidecar's Flush: returns once everything accepted was delivered."""
    import grpc  # noqa: PLC0415

    from sidecar._proto import sidecar_pb2 as pb  # noqa: PLC0415
    from sidecar._proto import sidecar_pb2_grpc as pb_grpc  # noqa: PLC0415

    with grpc.insecure_channel(address) as channel:
        pb_grpc.SidecarServiceStub(channel).Flush(pb.FlushRequest(), timeout=600)


def sidecar_supports_http() -> bool:
    """Whether this build has the HTTP intake (SIDECAR_HTTP_LISTEN)."""
    from sidecar.config import Settings  # noqa: PLC0415

    return "http_listen" in Settings.model_fields


@dataclass
class Cell:
    """One measured side: partner CPU and sidecar CPU (seconds) for ``events`` events."""

    partner: float | None
    sidecar: float | None


def measure(side: str, events: int, externals: dict[str, ExternalPartner], base: Path | None = None) -> Cell:
    """Run one side once against a fresh collector (and sidecar, where the side has one); ``side@base`` runs the
    side's Python client and sidecar from the ``base`` tree."""
    side, _, variant = side.partition("@")
    tree = base if variant == "base" and base is not None else ROOT
    collector = CollectorProcess()
    collector.start()
    try:
        if side == "analytics-python":
            return Cell(run_python_partner(_partner_analytics_python, collector.url, events), None)
        with measured_sidecar(collector, http=side == "sidecar-http", tree=tree) as (address, pid, http_url):
            before = process_cpu_seconds(pid)
            if side == "sidecar-http":
                assert http_url is not None
                partner = run_python_partner(_partner_analytics_python, http_url, events)
            elif side == "sidecar-track":
                partner = run_python_partner(_partner_python_track, address, events, tree)
            elif side == "python":
                partner = run_python_partner(_partner_python_client, address, events, tree)
            else:
                partner = run_external(externals[side], address, events)
            flush_sidecar(address)
            used = process_cpu_seconds(pid) - before
            arrived = collector.wait_for(events, 60)
            if arrived < events:
                raise RuntimeError(f"{side}: only {arrived} of {events} events arrived")
            return Cell(partner, used)
    finally:
        collector.dump_and_stop()


def main() -> None:
    """Parse arguments, run the rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3,000 events, one round, Python only")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sides", default="", help="comma-separated subset of the sides")
    parser.add_argument("--base", type=Path, help="a checkout of an earlier commit: its client and sidecar run too")
    args = parser.parse_args()
    events, rounds = (3_000, 1) if args.quick else (args.events, args.rounds)

    sides = ["analytics-python", "python", "go", "node", "java", "sidecar-track"]
    if sidecar_supports_http():
        sides.append("sidecar-http")
    if args.quick:
        sides = [side for side in sides if side not in {"go", "node", "java"}]
    if args.sides:
        sides = [side for side in sides if side in args.sides.split(",")]
    externals: dict[str, ExternalPartner] = {}
    skipped: dict[str, str] = {}
    for partner in external_partners():
        if partner.name in sides:
            problem = prepare_external(partner)
            if problem is None:
                externals[partner.name] = partner
            else:
                skipped[partner.name] = problem
                sides.remove(partner.name)

    if args.base is not None:
        sides += [f"{side}@base" for side in sides if side in ("python", "sidecar-track", "sidecar-http")]
    print(machine())
    print(f"{events:,} track events of ~300 B (10 properties), one write key; {rounds} round(s), sides alternated")
    results: dict[str, list[Cell]] = {side: [] for side in sides}
    loads = []
    for round_number in range(rounds):
        order = sides[round_number % len(sides) :] + sides[: round_number % len(sides)]
        for side in order:
            loads.append(os.getloadavg()[0])
            results[side].append(measure(side, events, externals, args.base))
            cell = results[side][-1]
            print(f"  round {round_number + 1} {side}: partner {cell.partner} s, sidecar {cell.sidecar} s", flush=True)
    print(f"load average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f}")
    print(report(results, events))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")


def per_event_us(seconds: float | None, events: int) -> float | None:
    """Microseconds per event."""
    return None if seconds is None else seconds / events * 1e6


def report(results: dict[str, list[Cell]], events: int) -> str:
    """The table: median CPU per event in the partner and in the sidecar, and per-round ratios' medians."""
    library = results.get("analytics-python", [])
    rows = []
    for side, cells in results.items():
        partner = [per_event_us(cell.partner, events) for cell in cells]
        own = [per_event_us(cell.sidecar, events) for cell in cells]
        ratio = ""
        total_ratio = ""
        if library and side.partition("@")[0] in CLIENT_SIDES:
            ratios = [
                (cell.partner or 0.0) / lib.partner for cell, lib in zip(cells, library, strict=False) if lib.partner
            ]
            totals = [
                ((cell.partner or 0.0) + (cell.sidecar or 0.0)) / lib.partner
                for cell, lib in zip(cells, library, strict=False)
                if lib.partner
            ]
            ratio = f"{statistics.median(ratios):.2f}x" if ratios else ""
            total_ratio = f"{statistics.median(totals):.2f}x" if totals and cells[0].sidecar is not None else ""
        rows.append(
            [
                side,
                _median(partner),
                _median(own),
                ratio,
                total_ratio,
            ]
        )
    return table(
        ["side", "partner us/event", "sidecar us/event", "partner / library", "partner + sidecar / library"],
        rows,
    )


def _median(values: list[float | None]) -> str:
    present = [value for value in values if value is not None]
    return f"{statistics.median(present):.1f}" if present else "-"


if __name__ == "__main__":
    main()
