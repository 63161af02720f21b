"""Generate the Python client's blocking half (``_sync.py``) from its asyncio half (``_aio.py``) with unasync.

``_aio.py`` is the source: edit it, then run ``scripts/gen_sync_client.py``. The transformation is unasync's token
rewrite (``async``/``await`` removed, ``__aenter__`` -> ``__enter__``...; ``AsyncClient`` -> ``Client``), then the
few substitutions below that a token rewrite cannot express (``grpc.aio.`` -> ``grpc.``, the sleep, the docstrings),
then ``ruff format``. With ``--check`` it writes nothing and fails, showing the difference, when the committed
``_sync.py`` is not what it generates (CI runs this, like the stubs' drift check).

Usage: scripts/gen_sync_client.py [--check]
"""

from __future__ import annotations

import difflib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync  # type: ignore[import-untyped]  # no type information shipped

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "clients" / "python" / "src" / "segment_sidecar_client"
SOURCE = PACKAGE / "_aio.py"
TARGET = PACKAGE / "_sync.py"

NAMES = {"AsyncClient": "Client"}
"""Token replacements beyond unasync's own (it would make ``AsyncClient`` ``SyncClient``)."""

SUBS = (
    ("The asyncio client: the blocking client's methods as coroutines, on a ``grpc.aio`` channel.",
     "The blocking client: one method per Spec call, retries inside, a message id made before the first attempt."),
    ("import asyncio\n", "import time\n"),
    # The blocking channel fails the calls it closes with an RpcError (CANCELLED): no cancellation to tell apart.
    ("            except asyncio.CancelledError:\n"
     "                if not cancelled_by_close(self._closed):\n"
     "                    raise\n"
     "                raise closed_in_flight() from None\n", ""),
    ("from segment_sidecar_client._status import cancelled_by_close, closed_in_flight, translate",
     "from segment_sidecar_client._status import translate"),
    ("asyncio.sleep(", "time.sleep("),
    ("grpc.aio.", "grpc."),
    ("self._channel.close(None)", "self._channel.close()"),
    ("from collections.abc import Iterator, Iterable", "from collections.abc import Iterable, Iterator"),
    ("            for status in page.write_keys:\n                yield status\n",
     "            yield from page.write_keys\n"),
    ("stop by leaving the loop or cancelling the task.", "stop by leaving the loop or closing the client."),
    ("An asyncio client of the sidecar; share one per event loop (it holds one ``grpc.aio`` channel).",
     "A blocking client of the sidecar; thread-safe, and cheap to share (it holds one gRPC channel)."),
    ("Use it as an async\n    context manager, or await :meth:`close`.",
     "Use it as a context\n    manager, or call :meth:`close`."),
)  # fmt: skip
"""Text substitutions after the token rewrite, in order; each must apply (a stale one fails the generation)."""

HEADER = "# Generated from _aio.py by scripts/gen_sync_client.py (unasync): edit _aio.py, not this file.\n"


def generate() -> str:
    """The blocking client's source, as generated from ``_aio.py``."""
    with tempfile.TemporaryDirectory(prefix="unasync-") as folder:
        source = Path(folder) / "_aio.py"
        shutil.copyfile(SOURCE, source)
        unasync.unasync_files([str(source)], [unasync.Rule("_aio.py", "_sync.py", additional_replacements=NAMES)])
        text = (Path(folder) / "_sync.py").read_text(encoding="utf-8")
    for old, new in SUBS:
        if old not in text:
            raise SystemExit(f"gen_sync_client: substitution no longer applies, update SUBS: {old[:60]!r}")
        text = text.replace(old, new)
    text = HEADER + text
    formatted = subprocess.run(  # noqa: S603 - our own interpreter running ruff on generated text
        [sys.executable, "-m", "ruff", "format", "--config", str(ROOT / "clients" / "python" / "pyproject.toml"),
         "--stdin-filename", str(TARGET), "-"],
        input=text, capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return formatted.stdout


def main(argv: list[str]) -> int:
    """Write ``_sync.py``, or with ``--check`` compare it; return the exit status."""
    if argv not in ([], ["--check"]):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    generated = generate()
    if argv == ["--check"]:
        committed = TARGET.read_text(encoding="utf-8")
        if committed == generated:
            print("python sync client up to date")
            return 0
        diff = difflib.unified_diff(committed.splitlines(True), generated.splitlines(True), "committed", "generated")
        sys.stderr.writelines(list(diff)[:40])
        print("_sync.py is stale: edit _aio.py and run scripts/gen_sync_client.py", file=sys.stderr)
        return 1
    TARGET.write_text(generated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
