"""The sender chain, built inside-out in one place: rate limit -> authorise -> POST with its timeout -> classify.

Each link does one thing and holds the next. :class:`LimitedSender` takes exactly one limiter grant per attempt
(retries are attempts too, scheduled like any batch), then hands the batch to the terminal sender:
:class:`~sidecar.send.http.HttpSender` (authorise, POST without following redirects, classify) for Segment, or any
other terminal with the same contract (``async send(batch) -> Outcome``, never raising for transport failures), such
as a forwarding sender that needs no limiter (``limiter=None``).

The limiter's bound assumes a request starts as soon as its grant is given. Authorising can wait after the grant (an
OAuth key's first token), and attempts that waited together would then start together, over the cap. So the HTTP
terminal confirms its grant just before it starts the request (:meth:`SenderChain.confirm_grant`): one older than
:data:`LATE_GRANT_SECONDS` is replaced by a fresh one. An attempt still starts with exactly one grant; a replaced
grant is simply left unused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Protocol

import aiohttp

from sidecar.model import Batch, Region
from sidecar.send.auth import Authenticator
from sidecar.send.classify import Outcome
from sidecar.send.http import HttpSender
from sidecar.send.ratelimit import RateLimiter

LATE_GRANT_SECONDS = 0.1
"""How long after its grant an attempt may still start its request; the fleet limiter's lateness allowance too."""

_granted_at: ContextVar[float | None] = ContextVar("sidecar_granted_at", default=None)
"""When the attempt running in this task got its grant (monotonic seconds); None outside a limited attempt."""


class Sender(Protocol):
    """Makes one attempt for a batch."""

    async def send(self, batch: Batch) -> Outcome:
        """Send and classify; never raises for HTTP or network failures."""


class Lifecycle(Protocol):
    """A link with a lifecycle (the terminal's connection pool)."""

    async def start(self) -> None:
        """Begin; return quickly."""

    async def stop(self) -> None:
        """End; idempotent, safe without start."""


class TerminalSender(Sender, Lifecycle, Protocol):
    """The innermost link: makes the request."""


class LimitedSender:
    """Takes one rate-limiter grant, then hands the attempt on; ``on_wait`` is told how long the grant took, and
    every grant listener that a grant was given (a scheduler that chooses batches as late as possible needs that)."""

    __slots__ = ("_clock", "_limiter", "_next", "_on_wait", "grant_listeners")

    def __init__(
        self,
        limiter: RateLimiter,
        next_sender: Sender,
        on_wait: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limiter = limiter
        self._next = next_sender
        self._on_wait = on_wait
        self._clock = clock
        self.grant_listeners: list[Callable[[], None]] = []

    async def send(self, batch: Batch) -> Outcome:
        """Wait for a grant, then attempt."""
        started = self._clock()
        await self._limiter.acquire()
        granted = self._clock()
        if self._on_wait is not None:
            self._on_wait(granted - started)
        for listener in self.grant_listeners:
            listener()
        token = _granted_at.set(granted)
        try:
            return await self._next.send(batch)
        finally:
            _granted_at.reset(token)

    async def confirm_grant(self) -> None:
        """Just before the request starts: take a fresh grant if this attempt's is older than
        :data:`LATE_GRANT_SECONDS` (grant listeners are not told again: it is the same attempt)."""
        granted = _granted_at.get()
        if granted is None or self._clock() - granted <= LATE_GRANT_SECONDS:
            return
        await self._limiter.acquire()
        _granted_at.set(self._clock())


class SenderChain:
    """The built chain: ``send`` enters at the outermost link; ``start``/``stop`` reach the terminal."""

    __slots__ = ("_head", "_terminal")

    def __init__(self, head: Sender, terminal: TerminalSender) -> None:
        self._head = head
        self._terminal = terminal

    async def start(self) -> None:
        """Start the terminal (its connection pool)."""
        await self._terminal.start()

    async def stop(self) -> None:
        """Stop the terminal; idempotent."""
        await self._terminal.stop()

    async def send(self, batch: Batch) -> Outcome:
        """One attempt through every link."""
        return await self._head.send(batch)

    @property
    def paced(self) -> bool:
        """Whether the chain waits for a rate-limiter grant before each attempt."""
        return isinstance(self._head, LimitedSender)

    async def confirm_grant(self) -> None:
        """Called by the terminal just before it starts a request (see the module docstring); nothing without a
        limiter."""
        if isinstance(self._head, LimitedSender):
            await self._head.confirm_grant()

    def on_grant(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` each time an attempt gets its grant (never, for a chain without a limiter)."""
        if isinstance(self._head, LimitedSender):
            self._head.grant_listeners.append(listener)


def build_sender_chain(
    terminal: TerminalSender,
    limiter: RateLimiter | None,
    on_wait: Callable[[float], None] | None = None,
) -> SenderChain:
    """The chain in front of ``terminal``: a limiter link when ``limiter`` is given (None: the terminal paces itself
    or needs no pacing, such as a forwarding sender)."""
    head: Sender = terminal if limiter is None else LimitedSender(limiter, terminal, on_wait)
    return SenderChain(head, terminal)


def build_segment_chain(
    endpoints: dict[Region, str],
    authenticator: Authenticator,
    timeout: float,
    limiter: RateLimiter,
    on_wait: Callable[[float], None] | None = None,
    session: aiohttp.ClientSession | None = None,
) -> SenderChain:
    """Segment's chain: limiter -> authorise -> (grant confirmed) POST (``timeout`` per attempt, no redirects) ->
    classify."""
    terminal = HttpSender(endpoints, authenticator, timeout, session)
    chain = build_sender_chain(terminal, limiter, on_wait)
    terminal.before_post = chain.confirm_grant
    return chain
