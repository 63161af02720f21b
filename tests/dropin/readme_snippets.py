"""Run the README's "Already using a Segment library?" snippets as written against a live sidecar and collector.

The Python and Node.js blocks of that section are taken from README.md, the port of their host (8080) replaced by a
free one, and run unmodified: the Python block with this interpreter, the Node.js block with node from tests/dropin
(where ``npm ci`` installed @segment/analytics-node). The run passes when each block's event arrives at the local
collector with ``context.integration``. Without node or tests/dropin/node_modules the Node block is skipped, saying so
(a failure when CI=true).

Usage: ``.venv/bin/python tests/dropin/readme_snippets.py --quick`` (the only mode: it takes a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sidecar.app import Sidecar  # noqa: E402 - after the path is set, so the script runs from anywhere
from sidecar.collector.server import Collector  # noqa: E402
from sidecar.config import load  # noqa: E402

SECTION = "## Already using a Segment library?"
README_PORT = "127.0.0.1:8080"
WRITE_KEY = "YOUR_WRITE_KEY"


def snippets() -> dict[str, str]:
    """The section's fenced blocks by language (the first of each)."""
    text = (ROOT / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, str] = {}
    for language, body in re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL):
        blocks.setdefault(language, body)
    return blocks


async def run(command: list[str], cwd: Path, suffix: str, code: str) -> None:
    """Write ``code`` to a file in ``cwd`` and run it; raise with its output when it fails."""
    with tempfile.NamedTemporaryFile("w", suffix=suffix, dir=cwd, delete=False) as script:
        script.write(code)
    try:
        process = await asyncio.create_subprocess_exec(
            *command, script.name, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        if process.returncode != 0:
            raise RuntimeError(f"{command[0]} snippet exited {process.returncode}:\n{output.decode()}")
    finally:
        Path(script.name).unlink()


async def main() -> int:
    """Start a collector and a sidecar, run the snippets, check the arrivals."""
    blocks = snippets()
    node_dir = ROOT / "tests" / "dropin"
    node_reason = None
    if shutil.which("node") is None:
        node_reason = "node is missing"
    elif not (node_dir / "node_modules" / "@segment" / "analytics-node").is_dir():
        node_reason = "tests/dropin/node_modules is missing (make setup)"
    if node_reason is not None and os.environ.get("CI") == "true":
        print(f"FAILED: CI=true but {node_reason}")
        return 1
    collector = Collector("us")
    await collector.start()
    with tempfile.TemporaryDirectory() as spool:
        settings, _ = load(
            {
                "SIDECAR_LISTEN": "127.0.0.1:0",
                "SIDECAR_HTTP_LISTEN": "127.0.0.1:0",
                "SIDECAR_METRICS_LISTEN": "off",
                "SIDECAR_SPOOL_DIR": spool,
                "SIDECAR_ENDPOINT_US": collector.url,
                "SIDECAR_FLUSH_INTERVAL": "100ms",
                "SIDECAR_LOG_LEVEL": "warning",
            }
        )
        sidecar = Sidecar(settings)
        await sidecar.start()
        try:
            assert sidecar.http_intake is not None
            here = f"127.0.0.1:{sidecar.http_intake.port}"
            await run([sys.executable], ROOT, ".py", blocks["python"].replace(README_PORT, here))
            expected = 1
            if node_reason is None:
                await run(["node"], node_dir, ".mjs", blocks["js"].replace(README_PORT, here))
                expected = 2
            else:
                print(f"skipped the Node.js snippet: {node_reason}")
            events = await collector.store.wait_for_events(expected, timeout=20, write_key=WRITE_KEY)
        finally:
            await sidecar.stop(grace=1)
            await collector.stop()
    libraries = sorted(event["context"]["integration"]["name"] for event in events)
    print(f"README snippets: {len(events)} events arrived ({', '.join(libraries)})")
    return 0 if len(events) == expected else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the only mode; accepted so the docs check runs it")
    parser.parse_args()
    sys.exit(asyncio.run(main()))
