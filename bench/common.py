"""What the benchmarks share: the event they send, starting a sidecar or an echo server in its own process, tables.

Every server under test runs in a process of its own and every client in others (multiprocessing, spawn), so that a
figure measures what a partner on the same machine would see. Nothing here runs under pytest.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

INTEGRATION_NAME = "acme-mail"
WRITE_KEY = "bench-write-key-0000"

# An "Email Opened" event as an email tool sends it: about 430 bytes once the sidecar has enriched it (see
# enriched_size), the size issue 6 computes the cap's ceiling for.
PROPERTIES = {
    "campaign_id": "cmp_2026_11_spring_sale",
    "email_id": "em_000000123456",
    "email_subject": "Our spring sale starts now",
}
CONTEXT = {"ip": "203.0.113.7", "locale": "en-US"}
PROPERTIES_JSON = orjson.dumps(PROPERTIES)
CONTEXT_JSON = orjson.dumps(CONTEXT)


def track_fields(index: int, write_key: str = WRITE_KEY, message_id: str = "") -> dict[str, Any]:
    """Keyword arguments of a ``TrackRequest`` for event number ``index`` (JSON fields sent as raw bytes)."""
    return {
        "write_key": write_key,
        "user_id": f"user-{index % 100_000:06d}",
        "event": "Email Opened",
        "message_id": message_id,
        "properties_json": PROPERTIES_JSON,
        "context_json": CONTEXT_JSON,
    }


def enriched_size() -> int:
    """Bytes of the bench event as the sidecar sends it to Segment (after enrichment, with a UUID message id)."""
    from sidecar.enrich.enricher import Enricher  # noqa: PLC0415
    from sidecar.model import Call, CallType, Region  # noqa: PLC0415

    fields = {
        "userId": "user-000001",
        "event": "Email Opened",
        "properties": orjson.Fragment(PROPERTIES_JSON),
        "context": orjson.Fragment(CONTEXT_JSON),
    }
    call = Call(CallType.TRACK, WRITE_KEY, Region.US, fields, {"context": CONTEXT}, time.time())
    return len(Enricher(INTEGRATION_NAME, "1.0.0")(call, []).payload)


def ceiling(event_bytes: int, cap: float = 50.0) -> tuple[int, float]:
    """(events per full batch, events/s at ``cap`` full batches per second) for events of ``event_bytes``."""
    from sidecar.config import DEFAULT_BATCH_BYTES, SEGMENT_MAX_BATCH_EVENTS  # noqa: PLC0415
    from sidecar.send.http import envelope_overhead  # noqa: PLC0415

    per_batch = min(SEGMENT_MAX_BATCH_EVENTS, (DEFAULT_BATCH_BYTES - envelope_overhead(WRITE_KEY)) // (event_bytes + 1))
    return per_batch, per_batch * cap


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_grpc(address: str, timeout: float = 20.0) -> None:
    """Return once a gRPC server answers on ``address``."""
    import grpc  # noqa: PLC0415

    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=timeout)


@dataclass
class Server:
    """A server process under test: its address, pid and where its log goes."""

    address: str
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The server's process id (for psutil)."""
        return self.process.pid

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then wait (SIGKILL after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def sidecar(
    env: dict[str, str] | None = None,
    loop: str = "asyncio",
    profile: Path | None = None,
    grace: float = 0.5,
    switch_interval: float | None = None,
    root: Path = ROOT,
) -> Iterator[Server]:
    """A sidecar process (bench/serve.py) on a free port with a fresh spool folder; stopped on exit.

    Delivery goes to a closed port unless ``env`` says otherwise, so that an ingest benchmark measures ingest alone
    (failed attempts back off, and cost next to nothing).
    """
    with tempfile.TemporaryDirectory(prefix="sidecar-bench-") as folder:
        port = free_port()
        log_path = Path(folder) / "sidecar.log"
        full_env = {
            **os.environ,
            "SIDECAR_LISTEN": f"127.0.0.1:{port}",
            "SIDECAR_INTEGRATION_NAME": INTEGRATION_NAME,
            "SIDECAR_SPOOL_DIR": str(Path(folder) / "spool"),
            "SIDECAR_ENDPOINT_US": f"http://127.0.0.1:{free_port()}",
            "SIDECAR_ENDPOINT_EU": f"http://127.0.0.1:{free_port()}",
            "SIDECAR_LOG_FORMAT": "json",
            "SIDECAR_LOG_LEVEL": "warning",
            "SIDECAR_SHUTDOWN_GRACE": f"{grace}s",
            "SIDECAR_METRICS_LISTEN": "off",
            **(env or {}),
        }
        command = [sys.executable, str(root / "bench" / "serve.py"), "--loop", loop]
        if profile is not None:
            command += ["--profile", str(profile)]
        if switch_interval:
            command += ["--switch-interval", str(switch_interval)]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(command, env=full_env, stdout=log_file, stderr=subprocess.STDOUT)
        server = Server(f"127.0.0.1:{port}", process, log_path, {"spool_dir": Path(folder) / "spool"})
        try:
            wait_for_grpc(server.address)
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def echo_server(loop: str = "asyncio", *, commit: bool = False) -> Iterator[Server]:
    """The do-nothing grpc.aio servicer (bench/echo_server.py) on a free port; stopped on exit. ``commit``: each call
    answers once its request is committed to SQLite in a temporary folder (the ``floor`` server of ingest.py)."""
    with tempfile.TemporaryDirectory(prefix="echo-bench-") as folder:
        port = free_port()
        log_path = Path(folder) / "echo.log"
        command = [sys.executable, str(ROOT / "bench" / "echo_server.py"), f"127.0.0.1:{port}", "--loop", loop]
        if commit:
            command += ["--commit", folder]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        server = Server(f"127.0.0.1:{port}", process, log_path)
        try:
            wait_for_grpc(server.address)
            yield server
        finally:
            server.stop()


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0.0 for none)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, columns padded for the terminal."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def machine() -> str:
    """One line naming the machine: CPU model, cores, Python."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def _collector_main(port: int, conn: Any) -> None:
    """The collector process: a keep_events=False Collector on ``port``, answering ``conn`` commands.

    Commands: ``"count"`` -> events accepted so far; ``"dump"`` -> one tuple per request (arrival, start, status,
    body bytes, message ids), then the process stops. Arrival is ``time.monotonic()`` when the request was recorded
    (system-wide on Linux, so comparable with the clients' clocks).
    """
    import asyncio  # noqa: PLC0415
    import threading  # noqa: PLC0415

    import uvloop  # noqa: PLC0415

    from sidecar.collector import Collector, ReceivedRequest  # noqa: PLC0415
    from sidecar.logs import configure  # noqa: PLC0415

    configure("warning", "json")

    async def run() -> None:
        collector = Collector(port=port, keep_events=False)
        arrivals: list[tuple[float, float, int, int, list[str]]] = []

        def on_request(request: ReceivedRequest | None) -> None:
            if request is not None:
                ids = [str(event.get("messageId")) for event in request.events]
                arrivals.append((time.monotonic(), request.started_at, request.status, request.body_bytes, ids))
                request.events = []  # the ids are kept above: nothing more per event

        collector.store.subscribe(on_request)
        await collector.start()
        conn.send("ready")
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def serve_commands() -> None:
            # A thread, not loop.add_reader: uvloop makes a watched fd non-blocking, and a large dump then fails.
            while True:
                command = conn.recv()
                if command == "count":
                    conn.send(sum(len(a[4]) for a in list(arrivals) if 200 <= a[2] < 300))
                elif command == "dump":
                    conn.send(list(arrivals))
                    loop.call_soon_threadsafe(done.set)
                    return

        threading.Thread(target=serve_commands, daemon=True).start()
        await done.wait()
        await collector.stop()

    uvloop.run(run())


class CollectorProcess:
    """The local collector (sidecar.collector.Collector) in a process of its own, so it takes no sidecar CPU."""

    def __init__(self, port: int | None = None) -> None:
        import multiprocessing  # noqa: PLC0415

        self.port = port or free_port()
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_collector_main, args=(self.port, child), daemon=True)

    @property
    def url(self) -> str:
        """Where to point SIDECAR_ENDPOINT_US."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until it listens."""
        self._process.start()
        if not self._conn.poll(30):
            raise RuntimeError("the collector process did not start")
        self._conn.recv()

    def count(self) -> int:
        """Events accepted so far."""
        self._conn.send("count")
        return int(self._conn.recv())

    def wait_for(self, events: int, timeout: float) -> int:
        """Poll (every 0.2 s) until ``events`` were accepted or ``timeout`` passes; return the count."""
        deadline = time.monotonic() + timeout
        count = self.count()
        while count < events and time.monotonic() < deadline:
            time.sleep(0.2)
            count = self.count()
        return count

    def dump_and_stop(self) -> list[tuple[float, float, int, int, list[str]]]:
        """Every request received (see _collector_main), then stop the process."""
        self._conn.send("dump")
        arrivals: list[tuple[float, float, int, int, list[str]]] = self._conn.recv()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
        return arrivals


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread (psutil)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        import threading  # noqa: PLC0415

        import psutil  # noqa: PLC0415

        self._process = psutil.Process(pid)
        self._interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append((time.monotonic(), self._process.memory_info().rss))
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self, since: float = 0.0) -> float:
        """Largest RSS sampled after ``since`` (monotonic), in MB."""
        values = [rss for at, rss in self.samples if at >= since]
        return max(values, default=0) / 1e6
