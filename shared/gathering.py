"""Gathering a burst of commits into one pass: a loop woken by commits begins its next woken pass no sooner than
an interval after the one before it began."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Gathering:
    """When the last pass a commit woke began, and the wait before the next such pass.

    Under a stream of commits, a pass woken by one begins `interval_s` after the woken pass before it began, so
    that it handles what several commits wrote (fewer passes, for at most `interval_s` more delay). Only woken
    passes start a gather: after passes of a poll timer (or the first pass) or a quiet spell, a commit is handled
    at once. The loop calls `began(woken)` as a pass begins and `await settle(woken)` before the next one."""

    def __init__(
        self,
        interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._began: float | None = None  # none yet: the first woken pass waits for nothing

    def began(self, woken: bool) -> None:
        """A pass begins now; one a commit woke starts a gather."""
        if woken:
            self._began = self._clock()

    def wait_s(self, woken: bool) -> float:
        """How long the coming pass waits: the rest of the interval of the last woken pass, if a commit woke it."""
        if not woken or self._began is None:
            return 0.0
        return max(0.0, self._began + self._interval_s - self._clock())

    async def settle(self, woken: bool) -> bool:
        """Wait, before a pass a commit woke, until the interval since the last woken pass began has passed, so
        that what commits meanwhile is handled with it; returns whether it waited. Without a wait it returns at
        once, without handing control to the event loop."""
        wait_s = self.wait_s(woken)
        if wait_s <= 0:
            return False
        await self._sleep(wait_s)
        return True
