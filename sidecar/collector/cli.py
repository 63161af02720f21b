"""``segment-sidecar collector``: run a US and an EU collector until SIGTERM or SIGINT.

Once both listen, the command prints exactly one JSON line to stdout and flushes it, for the demo and for other
processes (clients' conformance tests in any language) to read::

    {"us": "http://127.0.0.1:8765", "eu": "http://127.0.0.1:8766"}

Ports may be 0 (the line then carries the ports actually bound). Everything else the command says goes to stderr.
Exit status: 0 after a clean stop, 1 when a port cannot be bound, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

import structlog

from sidecar.collector.server import Collector
from sidecar.logs import configure as configure_logs

DEFAULT_HOST = "127.0.0.1"
DEFAULT_US_PORT = 8765
DEFAULT_EU_PORT = 8766


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    parser = argparse.ArgumentParser(
        prog="segment-sidecar collector",
        description="Run a local Segment-compatible Tracking API for the US and the EU region.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument(
        "--us-port", type=int, default=DEFAULT_US_PORT, help=f"US port, 0 for any (default {DEFAULT_US_PORT})"
    )
    parser.add_argument(
        "--eu-port", type=int, default=DEFAULT_EU_PORT, help=f"EU port, 0 for any (default {DEFAULT_EU_PORT})"
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name to answer besides loopback names and IP addresses (repeatable)",
    )
    return parser


def main(argv: list[str]) -> int:
    """Run the collectors until SIGTERM/SIGINT; return the process exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 0 for --help and 2 for bad arguments
        return int(exc.code or 0)
    if not structlog.is_configured():
        # stdout carries the one JSON line other processes read: sidecar.logs writes every log line to stderr.
        configure_logs("info")
    try:
        asyncio.run(_serve(args.host, args.us_port, args.eu_port, tuple(args.allow_host)))
    except OSError as exc:
        print(f"segment-sidecar collector: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(host: str, us_port: int, eu_port: int, allowed_hosts: tuple[str, ...] = ()) -> None:
    """Start both collectors, announce them, wait for a stop signal, stop them."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still raises KeyboardInterrupt
            loop.add_signal_handler(signum, stopping.set)
    us = Collector("us", host, us_port, allowed_hosts=allowed_hosts)
    eu = Collector("eu", host, eu_port, allowed_hosts=allowed_hosts)
    try:
        await us.start()
        await eu.start()
        sys.stdout.write(json.dumps({"us": us.url, "eu": eu.url}) + "\n")
        sys.stdout.flush()
        await stopping.wait()
    finally:
        await eu.stop()
        await us.stop()
