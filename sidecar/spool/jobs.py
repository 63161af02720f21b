"""The spool's storage actor: the one owner of the store, its connection and its thread. Every store call that
writes (commits, removals, dead letters, replays, pruning) is a job run here, in order: on the store's dedicated
thread, or at once on the loop for a store that never blocks (memory). Each job's effect on the spool's bookkeeping
is applied on the event loop in the order the jobs ran (in the job's done callback), so the bookkeeping always
describes the store as of the last job applied, whoever awaited it. Only the SQLite store's per-key reads run
beside it, on a read-only connection and thread of their own (WAL lets them)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from sidecar.errors import SpoolFailure
from sidecar.model import ShardKey, SpooledEvent
from sidecar.spool.store import Oldest, Store

T = TypeVar("T")


class StoreJobs:
    """Runs a store's calls on the store's thread (or at once, on the loop, for a store that never blocks)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._executor: ThreadPoolExecutor | None = None

    @property
    def started(self) -> bool:
        """Whether the store's thread runs."""
        return self._executor is not None

    def start(self) -> None:
        """Start the store's thread."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")

    def shutdown(self) -> None:
        """Wait for the jobs given and end the thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def run(self, function: Callable[..., T], *args: object, then: Callable[[T], None] | None = None) -> T:
        """Run a store job (on the store's thread unless the store is inline); ``then`` applies its result to the
        spool's bookkeeping on the loop, in job order, even when the caller stopped waiting."""
        assert self._executor is not None, "spool used before start()"
        if self._store.inline:
            result = function(*args)
            if then is not None:
                then(result)
            return result
        return await self.offload(function, *args, then=then)

    async def offload(self, function: Callable[..., T], *args: object, then: Callable[[T], None] | None = None) -> T:
        """On the store's thread even for an inline store (a scan that may be long)."""
        assert self._executor is not None, "spool used before start()"
        loop = asyncio.get_running_loop()
        # The job's effect is applied by a callback on the job itself, even when the caller stops waiting for it (a
        # Flush deadline): effects are applied in the order the thread ran the jobs, before any later job's.
        job = self._executor.submit(function, *args)
        job.add_done_callback(lambda _: _call_soon_threadsafe(loop, lambda: self._job_done(job, then)))
        return await asyncio.wrap_future(job, loop=loop)

    def _job_done(self, job: Future[T], then: Callable[[T], None] | None) -> None:
        if then is not None and not job.cancelled() and job.exception() is None:
            then(job.result())


def _call_soon_threadsafe(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing is left to coordinate
        loop.call_soon_threadsafe(callback)


def keys_of(events: Iterable[SpooledEvent]) -> list[ShardKey]:
    """The distinct keys of some events, in first-seen order."""
    return list(dict.fromkeys((event.write_key, event.region) for event in events))


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
