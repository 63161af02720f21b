"""The spool's storage actor: the one owner of the store, its connection and its thread. Every store call that
writes (commits, removals, dead letters, replays, pruning) is a job run here, in order: on the store's dedicated
thread, or at once on the loop for a store that never blocks (memory). Each job's effect on the spool's bookkeeping
is applied on the event loop in the order the jobs ran (in the job's ``then``), so the bookkeeping always describes
the store as of the last job applied, whoever awaited it. Only the SQLite store's per-key reads run beside it, on a
read-only connection and a :class:`Lane` of their own (WAL lets them).

A :class:`Lane` is a thread and a queue, not a thread pool: a job's result comes back to the loop in one callback
(one wake-up of the loop), which applies its ``then`` and resolves the caller's future in the same callback. The
thread takes the GIL back only after the job itself and that one hand-off; a ``concurrent.futures`` round trip
(``submit`` then ``wrap_future``) costs a second hand-off and a second loop turn before the caller runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sidecar.errors import SpoolFailure
from sidecar.model import ShardKey
from sidecar.spool.store import Oldest, Store

T = TypeVar("T")

_Job = tuple[Callable[..., Any], tuple[object, ...], "Callable[[Any], None] | None", "asyncio.Future[Any]"]


class Lane:
    """One thread that runs blocking jobs in the order given and hands each result back to the loop in one callback.

    ``then`` (optional) runs on the loop with the job's result before the caller's future is resolved, in job order,
    even when the caller stopped waiting (cancelled): bookkeeping never skips a job that ran.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def started(self) -> bool:
        """Whether the lane's thread runs."""
        return self._thread is not None

    def start(self) -> None:
        """Start the thread (a daemon: a spool never stopped must not keep the process from exiting)."""
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()

    def shutdown(self) -> None:
        """Let the thread finish the jobs given, then end it."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    async def run(self, function: Callable[..., T], *args: object, then: Callable[[T], None] | None = None) -> T:
        """Run ``function(*args)`` on the lane's thread; ``then`` applies its result on the loop (see the class)."""
        assert self._loop is not None, "lane used before start()"
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((function, args, then, future))
        return await future

    def _serve(self) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            job = self._queue.get()
            if job is None:
                return
            function, args, then, future = job
            try:
                result, error = function(*args), None
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, on the loop
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing is left to coordinate
                loop.call_soon_threadsafe(_settle, future, then, result, error)


def _settle(
    future: asyncio.Future[Any], then: Callable[[Any], None] | None, result: object, error: BaseException | None
) -> None:
    """On the loop: apply the job's effect, then resolve its caller (unless the caller gave up)."""
    if error is None and then is not None:
        try:
            then(result)
        except Exception as exc:  # noqa: BLE001 - the caller hears of it rather than hang
            error = exc
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class StoreJobs:
    """Runs a store's calls on the store's own :class:`Lane` (or at once, on the loop, for a store that never
    blocks)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lane = Lane("spool")

    @property
    def started(self) -> bool:
        """Whether the store's thread runs."""
        return self._lane.started

    def start(self) -> None:
        """Start the store's thread."""
        self._lane.start()

    def shutdown(self) -> None:
        """Wait for the jobs given and end the thread."""
        self._lane.shutdown()

    async def run(self, function: Callable[..., T], *args: object, then: Callable[[T], None] | None = None) -> T:
        """Run a store job (on the store's thread unless the store is inline); ``then`` applies its result to the
        spool's bookkeeping on the loop, in job order, even when the caller stopped waiting."""
        assert self._lane.started, "spool used before start()"
        if self._store.inline:
            result = function(*args)
            if then is not None:
                then(result)
            return result
        return await self._lane.run(function, *args, then=then)

    async def offload(self, function: Callable[..., T], *args: object, then: Callable[[T], None] | None = None) -> T:
        """On the store's thread even for an inline store (a scan that may be long)."""
        assert self._lane.started, "spool used before start()"
        return await self._lane.run(function, *args, then=then)


# Gathered in C (map over an attrgetter) rather than by a loop in Python: the spool's bookkeeping runs on the event
# loop for every event committed, delivered or dead-lettered.
seq_of = operator.attrgetter("seq")


def oldest_of(store: Store, keys: list[ShardKey]) -> dict[ShardKey, Oldest] | None:
    """The keys' oldest events after a removal, or None when that read failed (the removal itself succeeded)."""
    try:
        return store.oldest(keys)
    except SpoolFailure:
        return None


def used_or_none(store: Store) -> int | None:
    """The store's bytes on disk after a job, or None (memory, or the measurement failed: the next one counts)."""
    if not store.on_disk:
        return None
    try:
        return store.used_bytes()
    except SpoolFailure:
        return None
