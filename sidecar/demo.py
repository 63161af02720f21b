"""``segment-sidecar demo``: a local collector, a sidecar, and an email tool's Segment QA flow, on embedded defaults.

It plays what Segment's partner QA checklist expects of an email tool: a campaign is delivered to a test user, who
opens it, clicks its link and unsubscribes; it also shows a call the Spec check refuses. Every event is sent over gRPC,
exactly as a partner service would, and printed as it arrives at the collector, like Segment's debugger.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
import tempfile
from typing import TYPE_CHECKING, Any

import grpc
import orjson

from sidecar._proto import sidecar_pb2 as pb
from sidecar._proto import sidecar_pb2_grpc as pb_grpc
from sidecar.cli import plain
from sidecar.collector.server import Collector
from sidecar.collector.store import ReceivedRequest
from sidecar.config import load
from sidecar.logs import configure
from sidecar.model import write_key_hash

if TYPE_CHECKING:
    from sidecar.app import Sidecar

WRITE_KEY_US = "demo-write-key-us"
WRITE_KEY_EU = "demo-write-key-eu"
USER = "user-4242"


def _flow() -> list[tuple[str, Any]]:
    """The email QA flow as (label, request) pairs."""
    campaign = (
        b'{"campaign_id":"spring-sale","campaign_name":"Spring Sale","email_id":"em-1","email_subject":"20% off"}'
    )
    return [
        (
            "identify the test user",
            pb.IdentifyRequest(
                write_key=WRITE_KEY_US, user_id=USER, traits_json=b'{"email":"test@example.com","firstName":"Ada"}'
            ),
        ),
        (
            "the campaign is delivered",
            pb.TrackRequest(write_key=WRITE_KEY_US, user_id=USER, event="Email Delivered", properties_json=campaign),
        ),
        (
            "the user opens it",
            pb.TrackRequest(write_key=WRITE_KEY_US, user_id=USER, event="Email Opened", properties_json=campaign),
        ),
        (
            "the user clicks its link",
            pb.TrackRequest(
                write_key=WRITE_KEY_US,
                user_id=USER,
                event="Email Link Clicked",
                properties_json=campaign[:-1] + b',"link_url":"https://example.com/sale","link_id":"cta"}',
            ),
        ),
        (
            "the user unsubscribes",
            pb.TrackRequest(write_key=WRITE_KEY_US, user_id=USER, event="Unsubscribed", properties_json=campaign),
        ),
        (
            "an EU customer's user opens an email",
            pb.TrackRequest(
                write_key=WRITE_KEY_EU,
                region=pb.REGION_EU,
                user_id="eu-user-7",
                event="Email Opened",
                properties_json=b'{"email_id":"em-9"}',
            ),
        ),
        (
            "a near-miss name the Spec check refuses",
            pb.TrackRequest(write_key=WRITE_KEY_US, user_id=USER, event="email open"),
        ),
    ]


def _print_arrival(region: str, request: ReceivedRequest | None) -> None:
    if request is None or not request.accepted:
        return
    for event in request.events:
        name = event.get("event") or event.get("name") or ""
        print(
            f"  [{region.upper()} collector] {event['type']:<8} {name:<20} userId={event.get('userId')} "
            f"key={write_key_hash(request.write_key or '')} messageId={event['messageId']}"
        )
        print(
            "      " + orjson.dumps({k: event[k] for k in ("properties", "traits", "context") if k in event}).decode()
        )


async def run(pause: float, keep_running: bool, debugger: str = "127.0.0.1:0") -> int:
    """Start everything, play the flow, flush, print a summary; with ``keep_running``, serve until Ctrl-C.

    The spool lives in a temporary folder that is removed when the demo ends (Ctrl-C included).
    """
    from sidecar.app import Sidecar  # noqa: PLC0415 - keeps `--help` fast

    collectors = [Collector("us"), Collector("eu")]
    with tempfile.TemporaryDirectory(prefix="segment-sidecar-demo-") as spool_dir:
        for collector in collectors:
            await collector.start()
            collector.store.subscribe(functools.partial(_print_arrival, collector.region))
        settings, _ = load(
            {
                "SIDECAR_LISTEN": "127.0.0.1:0",
                "SIDECAR_INTEGRATION_NAME": "acme-mail",
                "SIDECAR_SPOOL_DIR": spool_dir,
                "SIDECAR_ENDPOINT_US": collectors[0].url,
                "SIDECAR_ENDPOINT_EU": collectors[1].url,
                "SIDECAR_FLUSH_INTERVAL": "300ms",
                "SIDECAR_LOG_LEVEL": "warning",
                "SIDECAR_METRICS_LISTEN": "off",  # the demo shows its debugger page; 9464 may be a real sidecar's
                **({"SIDECAR_DEBUGGER_LISTEN": debugger} if debugger != "off" else {}),
            }
        )
        sidecar = Sidecar(settings)
        try:
            await sidecar.start()
            return await _play(sidecar, collectors, spool_dir, pause, keep_running)
        finally:
            await sidecar.stop(grace=2)
            for collector in collectors:
                await collector.stop()


async def _play(sidecar: Sidecar, collectors: list[Collector], spool_dir: str, pause: float, keep_running: bool) -> int:
    """Print where everything listens, play the flow over gRPC, flush, and (with ``keep_running``) wait for Ctrl-C."""
    print(
        f"segment-sidecar demo: sidecar on 127.0.0.1:{sidecar.port}, collectors {collectors[0].url} (US) and "
        f"{collectors[1].url} (EU), spool {spool_dir} (removed at exit)"
    )
    if sidecar.debugger is not None:
        lifetime = (
            "open until Ctrl-C"
            if keep_running
            else "closes when the demo ends; `make demo ARGS=--keep-running` keeps it open"
        )
        print(f"live debugger page: http://127.0.0.1:{sidecar.debugger.port}/ ({lifetime})")
    print()
    failures = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.port}") as channel:
        stub = pb_grpc.SidecarServiceStub(channel)  # type: ignore[no-untyped-call]
        for label, request in _flow():
            method = getattr(stub, type(request).__name__.removesuffix("Request"))
            try:
                reply = await method(request, timeout=5)
                print(f"-> {label}: accepted, messageId={reply.message_id}")
            except grpc.aio.AioRpcError as error:
                print(f"-> {label}: {error.code().name}: {error.details()}")
                failures += error.code() != grpc.StatusCode.INVALID_ARGUMENT
            await asyncio.sleep(pause)
        flushed = await stub.Flush(pb.FlushRequest(), timeout=15)
    print(
        f"\nflushed: {flushed.delivered} events delivered, {flushed.dead_lettered} dead-lettered; "
        f"the collectors saw {sum(len(c.store.requests) for c in collectors)} batch requests"
    )
    if keep_running:
        print("running until Ctrl-C (collector pages: " + ", ".join(c.url + "/" for c in collectors) + ")")
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
    expected = len(_flow()) - 1
    return 0 if failures == 0 and flushed.delivered == expected else 1


def main(argv: list[str]) -> int:
    """Run the demo."""
    parser = argparse.ArgumentParser(prog="segment-sidecar demo", description=plain(__doc__ or ""))
    parser.add_argument("--pause", type=float, default=0.4, help="seconds between calls (default 0.4)")
    parser.add_argument("--keep-running", action="store_true", help="keep serving after the flow, until Ctrl-C")
    parser.add_argument(
        "--debugger",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="address of the live debugger page (default: a free loopback port; off to disable)",
    )
    args = parser.parse_args(argv)
    configure("warning", "console" if sys.stderr.isatty() else "json")
    try:
        return asyncio.run(run(args.pause, args.keep_running, args.debugger))
    except KeyboardInterrupt:
        return 0
