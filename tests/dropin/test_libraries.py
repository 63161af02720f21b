"""Segment's own libraries, unmodified, with only their host pointed at the sidecar's HTTP intake.

Python (segment-analytics-python, in this process's threads) and Node (@segment/analytics-node, a child process)
each send 5,000 events (track, identify and group, over several write keys), a Go program with
github.com/segmentio/analytics-go/v3 1,000: every event arrives at the local collector once, with
context.integration, within the cap; an event without userId is refused and the library's own error callback sees
it; a host with the /eu prefix delivers to the EU collector.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from segment.analytics.client import Client
from segment.analytics.request import APIError

from tests.conftest import SidecarFactory
from tests.dropin.support import (
    DROPIN_ENV,
    HERE,
    assert_arrived_once,
    go_missing,
    http_origin,
    node_missing,
    require,
    run_program,
    wait_delivered,
)
from tests.support.harness import Collectors


def send_with_python(
    host: str, write_key: str, count: int, errors: list[tuple[Exception, list[Any]]], gzip: bool = False
) -> set[str]:
    """Send ``count`` events (track, identify, group in turn) with one Client; flush; return their message ids."""
    client = Client(write_key, host=host, gzip=gzip, on_error=lambda error, batch: errors.append((error, batch)))
    sent = set()
    for i in range(count):
        message_id = f"py-{write_key}-{i}"
        user = f"user-{i % 97}"
        if i % 3 == 0:
            client.track(user_id=user, event="Email Opened", properties={"i": i}, message_id=message_id)
        elif i % 3 == 1:
            client.identify(user_id=user, traits={"email": f"{user}@example.com"}, message_id=message_id)
        else:
            client.group(user_id=user, group_id=f"group-{i % 7}", traits={"name": "Acme"}, message_id=message_id)
        sent.add(message_id)
    client.flush()
    client.shutdown()
    return sent


async def test_python_library(sidecar_factory: SidecarFactory, collectors: Collectors) -> None:
    """5,000 events over three US keys (one gzipped) and one EU key arrive once each; the userId-less event reaches
    on_error."""
    running = await sidecar_factory(**DROPIN_ENV)
    host = http_origin(running)
    errors: list[tuple[Exception, list[Any]]] = []
    plan = {"py-us-1": (host, 1500), "py-us-2": (host, 1500), "py-us-3": (host, 1000), "py-eu-1": (f"{host}/eu", 1000)}
    sent = dict(
        zip(
            plan,
            await asyncio.gather(
                *(
                    asyncio.to_thread(send_with_python, h, key, n, errors, key == "py-us-3")
                    for key, (h, n) in plan.items()
                )
            ),
            strict=True,
        )
    )
    assert not errors, errors[:1]

    invalid = Client("py-us-1", host=host, on_error=lambda error, batch: errors.append((error, batch)))
    invalid.track(anonymous_id="anon-1", event="Email Opened", message_id="py-no-user")
    await asyncio.to_thread(invalid.flush)
    invalid.shutdown()
    ((error, batch),) = errors
    assert isinstance(error, APIError) and error.status == 400 and error.code == "events_refused"
    assert "userId" in error.message and batch[0]["messageId"] == "py-no-user"

    await wait_delivered(collectors, 5000)
    assert_arrived_once(collectors, {key: ids for key, ids in sent.items() if key.startswith("py-us")})
    assert_arrived_once(collectors, {"py-eu-1": sent["py-eu-1"]}, region="eu")


async def test_node_library(sidecar_factory: SidecarFactory, collectors: Collectors) -> None:
    """@segment/analytics-node: 5,000 events over three keys arrive once; the refused event reaches its 'error'."""
    require(node_missing())
    running = await sidecar_factory(**DROPIN_ENV)
    host = http_origin(running)
    keys = ["node-1", "node-2", "node-3", "node-4"]
    result = await run_program(
        ["node", "send.mjs"], {"host": host, "keys": keys[:3], "perKey": 1250, "invalid": True}, HERE
    )
    eu = await run_program(
        ["node", "send.mjs"], {"host": host, "path": "/eu/v1/batch", "keys": keys[3:], "perKey": 1250}, HERE
    )
    assert len(result["sent"]) + len(eu["sent"]) == 5000 and not eu["errors"]
    assert [error["messageId"] for error in result["errors"]] == ["node-node-1-no-user"]
    assert "400" in result["errors"][0]["reason"]
    await wait_delivered(collectors, 5000)
    expected: dict[str, set[str]] = {key: set() for key in keys[:3]}
    for message_id in result["sent"]:
        expected[message_id.split("-", 1)[1].rsplit("-", 1)[0]].add(message_id)
    assert_arrived_once(collectors, expected)
    assert_arrived_once(collectors, {"node-4": set(eu["sent"])}, region="eu")


async def test_go_library(sidecar_factory: SidecarFactory, collectors: Collectors, tmp_path: Path) -> None:
    """analytics-go v3: 1,000 events over two keys, one of them through the /eu prefix, arrive once each."""
    require(go_missing())
    binary = tmp_path / "dropin-go"
    build = await asyncio.create_subprocess_exec(
        shutil.which("go") or "go",
        "build",
        "-o",
        str(binary),
        ".",
        cwd=HERE / "go",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(build.communicate(), 120)
    assert build.returncode == 0, output.decode()
    running = await sidecar_factory(**DROPIN_ENV)
    host = http_origin(running)
    us, eu = await asyncio.gather(
        run_program([str(binary)], {"host": host, "keys": ["go-us"], "perKey": 500}, tmp_path),
        run_program([str(binary)], {"host": f"{host}/eu", "keys": ["go-eu"], "perKey": 500}, tmp_path),
    )
    assert us["succeeded"] == eu["succeeded"] == 500 and not us["failed"] and not eu["failed"]
    await wait_delivered(collectors, 1000)
    assert_arrived_once(collectors, {"go-us": set(us["sent"])})
    assert_arrived_once(collectors, {"go-eu": set(eu["sent"])}, region="eu")
