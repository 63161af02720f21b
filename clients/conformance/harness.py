"""The conformance harness: a live sidecar and two local Segment collectors for every language's client tests.

Run it with the interpreter that has the ``sidecar`` package::

    python clients/conformance/harness.py up            # runs until stdin closes or SIGTERM / SIGINT
    python clients/conformance/harness.py up --no-stdin # runs until SIGTERM / SIGINT (for a terminal or a script)
    python clients/conformance/harness.py up --outcomes # a disk spool, and a restart URL (the outcome stream's tests)
    python clients/conformance/harness.py interpreter   # prints the interpreter a client test should use

``up`` starts a US and an EU collector (``sidecar.collector.Collector``) in this process, a sidecar
(``<this python> -m sidecar serve``) in a child process pointed at them, waits until the sidecar answers a ``Flush``,
then prints exactly one JSON line to stdout::

    {"sidecar_address": "127.0.0.1:PORT", "check_url": "http://127.0.0.1:PORT/check", "scenario": "/abs/scenario.json"}

``POST <check_url>`` (empty body) compares what both collectors received, normalised, with the scenario's
``expected`` and answers 200 ``{"ok": true}`` or 200 ``{"ok": false, "diff": "..."}``. The caller flushes its client
first; the check still polls the collectors for up to :data:`CHECK_SETTLE_SECONDS` before it reports a difference.
``GET /events`` answers the normalised events received so far, for debugging a client.

With ``--outcomes`` the sidecar keeps its spool (and so its outcome log) on disk, and the line also carries
``"restart_url"``: ``POST`` to it SIGKILLs the sidecar, starts it again on the same address with the same folder, and
answers 200 ``{"ok": true}`` once the new process answers a ``Flush`` (the clients' tests of ``WatchOutcomes``
resuming by itself across a sidecar restart).

Normalisation: the events inside each collector request's ``batch``, grouped by region, sorted by ``messageId``, with
``timestamp``, ``sentAt``, ``receivedAt`` and ``context.library.version`` removed; an event delivered twice (at least
once delivery) counts once. The sidecar's log goes to a temporary file whose path is written to stderr, and whose tail
is written to stderr when the sidecar fails to start. The log is deleted after a clean stop and kept otherwise.

This file is a script, not part of the ``sidecar`` package: it only uses the package's public collector and stubs.
"""

# The imports of aiohttp, grpc and sidecar sit inside the functions that use them, so that `interpreter` and the
# normalisation helpers work with any Python 3.11 (a client's own venv), not only the sidecar's.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
SCENARIO = HERE / "scenario.json"

READY_TIMEOUT_SECONDS = 60.0
"""How long the sidecar may take to answer its first call (a cold start imports grpc, pydantic and aiohttp)."""
CHECK_SETTLE_SECONDS = 3.0
"""How long a check waits for late events before it reports a difference."""
STOP_GRACE_SECONDS = 10.0
"""How long the sidecar may take to exit after SIGTERM before it is killed."""
REMOVED_FIELDS = ("timestamp", "sentAt", "receivedAt")

SIDECAR_SETTINGS = {
    "SIDECAR_SPOOL": "memory",
    "SIDECAR_FLUSH_INTERVAL": "100ms",
    "SIDECAR_INTEGRATION_NAME": "conformance-tool",
    "SIDECAR_SPEC_MODE": "strict",
    "SIDECAR_LOG_FORMAT": "json",
    "SIDECAR_SHUTDOWN_GRACE": "2s",
    "SIDECAR_METRICS_LISTEN": "off",  # the default 127.0.0.1:9464 would collide between parallel client suites
}


def interpreter() -> str:
    """The Python a client test should run this harness with: ``SIDECAR_PYTHON``, the repo's venv, or python3."""
    explicit = os.environ.get("SIDECAR_PYTHON")
    if explicit:
        return explicit
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else "python3"


def normalise_event(event: dict[str, Any]) -> dict[str, Any]:
    """One delivered event without the fields that differ from run to run."""
    out = {key: value for key, value in event.items() if key not in REMOVED_FIELDS}
    context = out.get("context")
    if isinstance(context, dict) and isinstance(context.get("library"), dict):
        library = {key: value for key, value in context["library"].items() if key != "version"}
        out["context"] = {**context, "library": library}
    return out


def normalise(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events of one region, normalised, exact duplicates dropped, sorted by ``messageId``."""
    unique: dict[str, dict[str, Any]] = {}
    for event in events:
        normalised = normalise_event(event)
        unique.setdefault(json.dumps(normalised, sort_keys=True), normalised)
    return sorted(
        unique.values(), key=lambda event: (str(event.get("messageId", "")), json.dumps(event, sort_keys=True))
    )


def compare(expected: dict[str, Any], received: dict[str, Any]) -> str:
    """A unified diff of expected against received normalised events; empty when they are equal."""
    want = json.dumps(expected, indent=2, sort_keys=True).splitlines()
    got = json.dumps(received, indent=2, sort_keys=True).splitlines()
    if want == got:
        return ""
    return "\n".join(difflib.unified_diff(want, got, "expected", "received", lineterm=""))


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Harness:
    """Two collectors, one sidecar process and the check server; :meth:`start` and :meth:`stop` bracket them."""

    def __init__(self, scenario: Path = SCENARIO, *, outcomes: bool = False) -> None:
        self.scenario = scenario
        self.outcomes = outcomes
        self.env: dict[str, str] = {}
        self.expected: dict[str, Any] = json.loads(scenario.read_text())["expected"]
        self.collectors: dict[str, Any] = {}
        self.process: asyncio.subprocess.Process | None = None
        self.runner: Any = None
        self.address = ""
        self.check_url = ""
        self.restart_url = ""
        self.workdir = Path(tempfile.mkdtemp(prefix="sidecar-conformance-"))
        self.log_path = self.workdir / "sidecar.log"

    async def start(self) -> None:
        """Start the collectors, the sidecar and the check server; raise RuntimeError if the sidecar never answers."""
        from aiohttp import web

        from sidecar.collector import Collector

        for region in ("us", "eu"):
            collector = Collector(region=region, host="127.0.0.1", port=0)
            await collector.start()
            self.collectors[region] = collector
        self.address = f"127.0.0.1:{free_port()}"
        env = {key: value for key, value in os.environ.items() if not key.startswith("SIDECAR_")}
        env.update(SIDECAR_SETTINGS)
        env.update(
            SIDECAR_LISTEN=self.address,
            SIDECAR_ENDPOINT_US=str(self.collectors["us"].url).rstrip("/"),
            SIDECAR_ENDPOINT_EU=str(self.collectors["eu"].url).rstrip("/"),
            SIDECAR_SPOOL_DIR=str(self.workdir / "spool"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        )
        if self.outcomes:
            env.update(SIDECAR_SPOOL="disk")
        self.env = env
        print(f"harness: sidecar log at {self.log_path}", file=sys.stderr, flush=True)
        await self._launch()

        app = web.Application()
        app.router.add_post("/check", self._check)
        app.router.add_get("/events", self._events)
        app.router.add_post("/restart", self._restart)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.check_url = f"http://127.0.0.1:{port}/check"
        if self.outcomes:
            self.restart_url = f"http://127.0.0.1:{port}/restart"

    async def _launch(self) -> None:
        """Start the sidecar process (its log appended to the log file) and wait until it answers."""
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sidecar",
                "serve",
                cwd=REPO_ROOT,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        await self._wait_ready()

    async def _restart(self, request: Any) -> Any:
        """SIGKILL the sidecar and start it again on the same address and folder (``--outcomes`` only)."""
        from aiohttp import web

        if not self.outcomes or self.process is None:
            return web.json_response({"ok": False, "error": "restart needs --outcomes"}, status=409)
        self.process.kill()
        await self.process.wait()
        try:
            await self._launch()
        except RuntimeError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=500)
        return web.json_response({"ok": True})

    async def _wait_ready(self) -> None:
        """Call Flush until the sidecar answers OK, the process exits, or the ready timeout passes."""
        import grpc

        from sidecar._proto import sidecar_pb2, sidecar_pb2_grpc

        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        last = "no answer"
        # The sidecar takes a few seconds to import; gRPC's default reconnect backoff (1 s growing by 1.6x) would
        # add up to as much again after it listens. Locally, retrying connects every 100 ms costs nothing.
        options = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 200)]
        async with grpc.aio.insecure_channel(self.address, options=options) as channel:
            stub = sidecar_pb2_grpc.SidecarServiceStub(channel)
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(f"the sidecar exited with status {self.process.returncode}: {self._log_tail()}")
                try:
                    await stub.Flush(sidecar_pb2.FlushRequest(), timeout=2.0, wait_for_ready=True)
                except grpc.aio.AioRpcError as exc:
                    last = f"{exc.code().name}: {exc.details()}"
                    await asyncio.sleep(0.1)  # the channel already backs off between connects; this bounds a busy loop
                else:
                    return
        raise RuntimeError(
            f"the sidecar did not answer within {READY_TIMEOUT_SECONDS:.0f} s ({last}): {self._log_tail()}"
        )

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def received(self) -> dict[str, list[dict[str, Any]]]:
        """What each collector has received so far, normalised."""
        return {region: normalise(list(collector.store.events())) for region, collector in self.collectors.items()}

    async def check(self) -> str:
        """The diff between expected and received, polling until they match or the settle time passes."""
        deadline = time.monotonic() + CHECK_SETTLE_SECONDS
        while True:
            diff = compare(self.expected, self.received())
            if not diff or time.monotonic() >= deadline:
                return diff
            await asyncio.sleep(0.05)

    async def _check(self, request: Any) -> Any:
        from aiohttp import web

        diff = await self.check()
        return web.json_response({"ok": True} if not diff else {"ok": False, "diff": diff})

    async def _events(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(self.received())

    async def stop(self) -> None:
        """Stop the sidecar (SIGTERM, then SIGKILL after a grace), the check server and the collectors. Idempotent."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                print(
                    f"harness: the sidecar did not exit within {STOP_GRACE_SECONDS:.0f} s of SIGTERM; killed it",
                    file=sys.stderr,
                    flush=True,
                )
                self.process.kill()
                await self.process.wait()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        for collector in self.collectors.values():
            await collector.stop()
        self.collectors.clear()
        # Keep the sidecar's log only when something went wrong: an exit other than a clean stop.
        if self.process is not None and self.process.returncode == 0:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif self.process is not None:
            status = self.process.returncode
            print(f"harness: sidecar exited with {status}; log kept at {self.log_path}", file=sys.stderr)


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin reaches EOF: the test that started us has gone."""

    def read() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read, name="stdin-watch", daemon=True).start()


async def up(watch_stdin: bool, *, outcomes: bool = False) -> int:
    """Run the harness until stdin closes or a signal arrives; return the exit status."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    harness = Harness(outcomes=outcomes)
    try:
        try:
            await harness.start()
        except Exception as exc:  # noqa: BLE001 - any start failure is reported the same way
            print(f"harness: cannot start: {exc}", file=sys.stderr, flush=True)
            return 1
        line = {"sidecar_address": harness.address, "check_url": harness.check_url, "scenario": str(harness.scenario)}
        if harness.restart_url:
            line["restart_url"] = harness.restart_url
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        if watch_stdin:
            _watch_stdin(loop, stop)
        await stop.wait()
        return 0
    finally:
        await harness.stop()


def main(argv: list[str] | None = None) -> int:
    """The command line: ``up`` or ``interpreter``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the collectors and a sidecar, print one JSON line, wait")
    start.add_argument("--no-stdin", action="store_true", help="do not stop when stdin closes (stop on a signal)")
    start.add_argument("--outcomes", action="store_true", help="a disk spool, and POST /restart to SIGKILL and restart")
    commands.add_parser("interpreter", help="print the Python a client test should run this harness with")
    args = parser.parse_args(argv)
    # Run from a checkout: the repository's own sidecar package wins over none at all.
    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))
    if args.command == "interpreter":
        print(interpreter())
        return 0
    _quiet_logs()
    return asyncio.run(up(watch_stdin=not args.no_stdin, outcomes=args.outcomes))


def _quiet_logs() -> None:
    """Send the in-process collectors' structlog output to stderr, warnings and worse only: stdout carries one line."""
    import logging

    import structlog

    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )


if __name__ == "__main__":
    sys.exit(main())
