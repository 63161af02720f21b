"""A TCP proxy to Redis for one fleet member, which a test can cut (close every connection and refuse new ones) and
mend again on the same port: a real network cut between that member and Redis while the others still reach it."""

from __future__ import annotations

import asyncio
import contextlib
import socket


class CuttableProxy:
    """Pipes a loopback port to Redis's port. :meth:`cut` resets every piped connection and stops listening (the
    member's calls and probes fail at once with a refused connection); :meth:`mend` listens on the same port again."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The redis:// URL a member uses to reach Redis through this proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def mend(self) -> None:
        """Listen (again) on the proxy's port."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        """Stop listening and reset every connection in both directions."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            with contextlib.suppress(OSError):
                writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            self._tasks.discard(task)
            return
        self._writers.add(up_writer)
        try:
            with contextlib.suppress(Exception):  # a reset by either end: the connection is over either way
                async with asyncio.TaskGroup() as group:
                    group.create_task(_pipe(reader, up_writer))
                    group.create_task(_pipe(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                end.transport.abort()
                self._writers.discard(end)
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.transport.abort()
