"""The one retry helper: capped exponential backoff with jitter, failures that count and failures that do not,
give-up, deadlines, and waits that end as soon as their owner stops."""

from __future__ import annotations

import asyncio
import time

import pytest
from tenacity import RetryCallState

from shared.retry import Backoff, Stopped, retrying, retrying_sync

FAST = Backoff(initial_s=0.001, max_s=0.004)


class Outage(Exception):
    pass


class Bug(Exception):
    pass


def test_waits_double_from_the_initial_one_and_never_pass_the_cap():
    wait = Backoff(initial_s=0.2, max_s=1.0).wait()
    waits = []
    for attempt in range(1, 8):
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = attempt
        waits.append(wait(state))
    assert 0.2 <= waits[0] <= 0.3
    assert 0.4 <= waits[1] <= 0.5
    assert 0.8 <= waits[2] <= 0.9
    assert all(w == 1.0 for w in waits[3:])


async def test_failures_that_do_not_count_are_retried_past_the_limit_and_the_others_give_up():
    failures = [Outage(), Outage(), Outage(), Outage(), Bug(), Outage(), Bug()]
    seen: list[BaseException] = []
    told: list[int] = []
    with pytest.raises(Bug):
        async for attempt in retrying(
            FAST,
            give_up_after=2,
            counts=lambda e: isinstance(e, Bug),
            on_retry=lambda error, wait, number: told.append(number),
        ):
            with attempt:
                error = failures.pop(0)
                seen.append(error)
                raise error
    assert len(seen) == 7, "four outages and one bug were retried; the second bug gave up"
    assert told == [1, 2, 3, 4, 5, 6]


async def test_success_after_failures_returns_normally():
    calls = 0
    async for attempt in retrying(FAST, give_up_after=5):
        with attempt:
            calls += 1
            if calls < 3:
                raise Outage()
    assert calls == 3


async def test_exceptions_not_retried_and_cancellation_propagate_at_once():
    calls = 0
    with pytest.raises(Bug):
        async for attempt in retrying(FAST, retry_on=lambda e: isinstance(e, Outage)):
            with attempt:
                calls += 1
                raise Bug()
    assert calls == 1

    cancelled = 0
    with pytest.raises(asyncio.CancelledError):
        async for attempt in retrying(FAST):
            with attempt:
                cancelled += 1
                raise asyncio.CancelledError()
    assert cancelled == 1


async def test_a_wait_ends_with_stopped_as_soon_as_the_owner_stops():
    stopping = False
    calls = 0

    async def stop_soon() -> None:
        nonlocal stopping
        await asyncio.sleep(0.05)
        stopping = True

    stopper = asyncio.create_task(stop_soon())
    started = time.monotonic()
    with pytest.raises(Stopped):
        async for attempt in retrying(Backoff(initial_s=30, max_s=30), stopping=lambda: stopping):
            with attempt:
                calls += 1
                raise Outage()
    await stopper
    assert calls == 1
    assert time.monotonic() - started < 5, "a 30 s wait must end within a check interval of the stop"


def test_a_deadline_ends_the_blocking_variant_with_the_last_failure():
    calls = 0
    started = time.monotonic()
    with pytest.raises(Outage):
        for attempt in retrying_sync(Backoff(initial_s=0.01, max_s=0.02), deadline_s=0.2):
            with attempt:
                calls += 1
                raise Outage()
    assert calls > 2
    assert time.monotonic() - started < 2


def test_the_blocking_variant_gives_up_after_the_attempts_given():
    calls = 0
    with pytest.raises(Outage):
        for attempt in retrying_sync(FAST, give_up_after=4):
            with attempt:
                calls += 1
                raise Outage()
    assert calls == 4
