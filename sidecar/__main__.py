"""The ``segment-sidecar`` command: serve, demo, collector, lint, healthcheck, dead-letters, config-table.

Only this module installs signal handlers and reads the process environment (through :func:`sidecar.config.load`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys

import structlog

from sidecar import __version__
from sidecar.cli import EXIT_CONFIG, plain, settings_or_exit
from sidecar.config import Settings
from sidecar.config_table import describe, markdown
from sidecar.errors import ConfigError

log = structlog.get_logger("sidecar")


async def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT, then drain within SIDECAR_SHUTDOWN_GRACE; a second signal exits at once."""
    from sidecar.app import Sidecar  # noqa: PLC0415 - keeps `lint` and `--help` fast

    try:
        sidecar = Sidecar(settings)
    except ConfigError as error:  # found while building a stage (an OAuth credentials file, say)
        print(f"segment-sidecar: {error}", file=sys.stderr)
        return EXIT_CONFIG
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            # Acknowledged events are already on disk (disk spool): exiting now loses none of them.
            log.warning("second_signal_exit", signal=signal.Signals(signum).name)
            os._exit(1)
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await sidecar.start()
    except ConfigError as error:
        print(f"segment-sidecar: {error}", file=sys.stderr)
        await sidecar.stop(grace=0)
        return EXIT_CONFIG
    except Exception as error:  # noqa: BLE001 - any start-up failure ends the process with one clear line
        log.error("start_failed", error=str(error))  # noqa: TRY400 - the reason is enough; no traceback for a config problem
        await sidecar.stop(grace=0)
        return 1
    settle_garbage_collector()
    await stop.wait()
    await sidecar.stop()
    return 0


GIL_SWITCH_INTERVAL = 0.0002
"""Seconds a thread waiting for the GIL waits before the running one must let go (Python's default: 0.005).

The spool's thread needs the GIL back after each SQLite statement; with the default, a busy event loop kept it
waiting up to 5 ms each time, which made a commit under load take 10-60 ms instead of 0.3-0.6 ms. The
switch happens only when a thread is waiting, so a shorter interval costs the loop little."""


GC_YOUNG_THRESHOLD = 4_000
"""Objects allocated (net) between two collections of the youngest generation (Python's default: 700).

Almost nothing the sidecar allocates per event is cyclic garbage: calls, dicts and payloads are freed by their
reference counts, and events live until they are delivered. With the default, 1,000-event Batch calls set off
collections that found nothing to free: 200 per 100,000 events, 1.3 us per event, one of them a full collection of
36 ms. At 4,000: 3 or 4 collections, 0.05-0.12 us per event (``bench/gc_cost.py``, bench/README.md).

Unary calls do leave garbage: gRPC's method lookup leaves a cycle of five objects per call, so there the collector
runs every 300 calls or so instead of every 40: 10 us per call instead of 18.5, each pause longer (Track at
concurrency 1: p99.9 6.4-7.2 ms against 3.6-5.5). At 10,000 the CPU was the same and p99.9 was 11-12.5 ms: 4,000
takes nearly all the saving for half that tail."""


def settle_garbage_collector() -> None:
    """Once the sidecar has started: leave what start-up made (modules, settings, servers) out of every later
    collection, and collect the young generation less often (:data:`GC_YOUNG_THRESHOLD`).

    Start-up leaves about 65,000 objects that live as long as the process, and each full collection walked them all:
    a pause of 20-40 ms on the benchmark machine, for every call in flight."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)


def _cmd_serve(args: argparse.Namespace) -> int:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    return asyncio.run(serve(settings_or_exit(serving=True)))


def _cmd_demo(args: argparse.Namespace) -> int:
    from sidecar.demo import main as demo_main  # noqa: PLC0415

    return demo_main(args.rest)


def _cmd_collector(args: argparse.Namespace) -> int:
    from sidecar.collector.cli import main as collector_main  # noqa: PLC0415

    return collector_main(args.rest)


def _cmd_lint(args: argparse.Namespace) -> int:
    from sidecar.lint import main as lint_main  # noqa: PLC0415

    return lint_main(args.rest)


def _cmd_healthcheck(args: argparse.Namespace) -> int:
    from sidecar.healthcheck import main as healthcheck_main  # noqa: PLC0415

    return healthcheck_main(args.rest)


def _cmd_dead_letters(args: argparse.Namespace) -> int:
    from sidecar.deadletters import main as dead_letters_main  # noqa: PLC0415

    return dead_letters_main(args.rest)


def _cmd_config_table(args: argparse.Namespace) -> int:
    print(markdown())
    return 0


def _settings_help() -> str:
    """Every setting with its default and meaning, for ``serve --help`` (the Markdown table: ``config-table``)."""
    lines = ["settings (environment variables only; segment-sidecar config-table prints them as tables):"]
    for name, default, meaning in describe():
        lines.append(f"  {name} (default {default})")
        lines.append(f"      {plain(meaning)}")
    return "\n".join(lines)


COMMANDS = {
    "serve": (_cmd_serve, "run the sidecar (configured by SIDECAR_* variables)"),
    "demo": (_cmd_demo, "start a local collector and a sidecar, and play an email tool's QA flow"),
    "collector": (_cmd_collector, "run the local Segment-compatible collector (US and EU)"),
    "lint": (_cmd_lint, "check event names or a tracking plan against the Segment Spec"),
    "healthcheck": (_cmd_healthcheck, "exit 0 when the sidecar answers SERVING (for Docker's HEALTHCHECK)"),
    "dead-letters": (_cmd_dead_letters, "list or replay events given up on"),
    "config-table": (_cmd_config_table, "print the table of SIDECAR_* variables (Markdown)"),
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch a subcommand; ``serve`` when none is given (so ``python -m sidecar`` runs the sidecar)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in COMMANDS and args_list[0] not in ("serve", "config-table"):
        # Subcommands with options of their own parse them themselves (argparse.REMAINDER drops leading options).
        handler = COMMANDS[args_list[0]][0]
        with contextlib.suppress(BrokenPipeError):
            return handler(argparse.Namespace(command=args_list[0], rest=args_list[1:]))
        return 0
    parser = argparse.ArgumentParser(prog="segment-sidecar", description="A local gRPC sidecar for Segment partners.")
    parser.add_argument("--version", action="version", version=f"segment-sidecar {__version__}")
    sub = parser.add_subparsers(dest="command")
    for name, (handler, help_text) in COMMANDS.items():
        command = sub.add_parser(
            name,
            help=help_text,
            add_help=name in ("serve", "config-table"),
            description=help_text,
            epilog=_settings_help() if name == "serve" else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        command.set_defaults(handler=handler)
    args = parser.parse_args(args_list)
    if args.command is None:
        args = parser.parse_args(["serve"])
    with contextlib.suppress(BrokenPipeError):
        result: int = args.handler(args)
        return result
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
