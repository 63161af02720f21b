"""The ceiling for unary gRPC in Python: a do-nothing grpc.aio SidecarService. ``python bench/echo_server.py ADDR``.

``Track`` answers a ``TrackResponse`` with the request's message id and nothing else; ``Batch`` answers the count
only. Same proto, same payload, same client as the sidecar: the difference is what the sidecar does per call.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from bench.serve import loop_factory  # noqa: E402
from sidecar._proto import sidecar_pb2 as pb  # noqa: E402
from sidecar._proto import sidecar_pb2_grpc as pb_grpc  # noqa: E402


class Echo(pb_grpc.SidecarServiceServicer):
    """Answers at once."""

    async def Track(self, request: pb.TrackRequest, context: Any) -> pb.TrackResponse:  # noqa: N802
        """Echo the message id."""
        return pb.TrackResponse(message_id=request.message_id)

    async def Batch(self, request: pb.BatchRequest, context: Any) -> pb.BatchResponse:  # noqa: N802
        """Count the events."""
        return pb.BatchResponse(accepted=len(request.events))


async def run(address: str) -> None:
    """Serve until SIGTERM."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 17 * 2**20), ("grpc.so_reuseport", 0)])
    pb_grpc.add_SidecarServiceServicer_to_server(Echo(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(address)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0.2)


def main() -> None:
    """Parse the address and loop, then serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("address")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(run(args.address))


if __name__ == "__main__":
    main()
