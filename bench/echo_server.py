"""The ceilings for unary gRPC in Python: a do-nothing grpc.aio SidecarService. ``python bench/echo_server.py ADDR
[--commit DIR]``.

``Track`` answers a ``TrackResponse`` with the request's message id and nothing else; ``Batch`` answers the count
only. Same proto, same payload, same client as the sidecar: the difference is what the sidecar does per call.

With ``--commit DIR`` (the ``floor`` server of bench/ingest.py) each call answers only once its request's bytes are
committed to a SQLite database in DIR as the disk spool commits (WAL, ``synchronous=FULL``, one fsync per commit):
on a thread of its own, the calls that arrive while a commit runs sharing the next one. Nothing is decoded, checked
or enriched: it is the least a server that acknowledges only what is on disk can do per call, on this machine's disk.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from bench.serve import loop_factory  # noqa: E402
from sidecar._proto import sidecar_pb2 as pb  # noqa: E402
from sidecar._proto import sidecar_pb2_grpc as pb_grpc  # noqa: E402


class Committer:
    """One thread that commits what the calls hand it, a group per transaction, and wakes each call on the loop."""

    def __init__(self, folder: Path, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[tuple[bytes, asyncio.Future[None]]] = queue.SimpleQueue()
        self._db = sqlite3.connect(folder / "floor.db", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS requests (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        threading.Thread(target=self._serve, name="commit", daemon=True).start()

    async def commit(self, body: bytes) -> None:
        """Return once ``body`` is on disk."""
        done: asyncio.Future[None] = self._loop.create_future()
        self._queue.put((body, done))
        await done

    def _serve(self) -> None:
        while True:
            group = [self._queue.get()]
            while not self._queue.empty():
                group.append(self._queue.get())
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO requests (body) VALUES (?)", [(body,) for body, _ in group])
            self._db.execute("COMMIT")
            self._loop.call_soon_threadsafe(_wake, [done for _, done in group])


def _wake(waiting: list[asyncio.Future[None]]) -> None:
    for done in waiting:
        if not done.done():
            done.set_result(None)


class Echo(pb_grpc.SidecarServiceServicer):
    """Answers at once, or once the request is committed (``committer``)."""

    def __init__(self, committer: Committer | None) -> None:
        self._committer = committer

    async def Track(self, request: pb.TrackRequest, context: Any) -> pb.TrackResponse:  # noqa: N802
        """Echo the message id."""
        if self._committer is not None:
            await self._committer.commit(request.SerializeToString())
        return pb.TrackResponse(message_id=request.message_id)

    async def Batch(self, request: pb.BatchRequest, context: Any) -> pb.BatchResponse:  # noqa: N802
        """Count the events."""
        if self._committer is not None:
            await self._committer.commit(request.SerializeToString())
        return pb.BatchResponse(accepted=len(request.events))


async def run(address: str, commit_folder: Path | None) -> None:
    """Serve until SIGTERM."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 17 * 2**20), ("grpc.so_reuseport", 0)])
    committer = None if commit_folder is None else Committer(commit_folder, asyncio.get_running_loop())
    pb_grpc.add_SidecarServiceServicer_to_server(Echo(committer), server)  # type: ignore[no-untyped-call]
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
    parser.add_argument("--commit", type=Path, help="commit each request to a SQLite database in this folder")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(run(args.address, args.commit))


if __name__ == "__main__":
    main()
