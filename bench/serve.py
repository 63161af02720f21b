"""Run a sidecar for the benchmarks: ``python bench/serve.py [--loop asyncio|uvloop] [--profile out.html]``.

The same as ``segment-sidecar serve`` (configured by the ``SIDECAR_*`` variables, SIGTERM drains), with a choice of
event loop so the benchmarks can compare asyncio with uvloop, and an optional pyinstrument profile of the whole run
written when the process stops. Not a test, and not part of the package.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sidecar.__main__ import GIL_SWITCH_INTERVAL, serve  # noqa: E402
from sidecar.cli import settings_or_exit  # noqa: E402


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop constructor for ``--loop``."""
    if name == "uvloop":
        import uvloop  # noqa: PLC0415

        return uvloop.new_event_loop  # type: ignore[no-any-return]
    return asyncio.new_event_loop


def main() -> int:
    """Serve until SIGTERM; exit status as ``segment-sidecar serve``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument HTML profile of the run here")
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=GIL_SWITCH_INTERVAL,
        help=f"sys.setswitchinterval in seconds (default {GIL_SWITCH_INTERVAL}, as `segment-sidecar serve` sets it)",
    )
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval)
    settings = settings_or_exit(serving=True)
    profiler = None
    if args.profile:
        from pyinstrument import Profiler  # noqa: PLC0415

        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        status = runner.run(serve(settings))
    if profiler is not None:
        profiler.stop()
        args.profile.write_text(profiler.output_html())
        args.profile.with_suffix(".txt").write_text(profiler.output_text(unicode=False, show_all=False))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
