"""The gathering of a burst of commits: only passes a commit woke start a gather, the next woken pass waits for the
rest of its interval, and passes of a timer or a quiet spell never make a commit wait."""

from __future__ import annotations

import asyncio
import contextlib

from shared.gathering import Gathering


class Clock:
    """A clock that moves only when told to, or when slept on."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def gathering(interval_s: float = 0.1) -> tuple[Gathering, Clock]:
    clock = Clock()
    return Gathering(interval_s, clock=clock, sleep=clock.sleep), clock


async def test_the_first_pass_a_commit_wakes_waits_for_nothing():
    gather, clock = gathering()
    assert await gather.settle(True) is False
    assert clock.slept == []


async def test_a_commit_soon_after_a_woken_pass_waits_for_the_rest_of_its_interval():
    # Times that are exact in binary, so the waits compare exactly.
    gather, clock = gathering(0.5)
    gather.began(True)
    clock.now += 0.125
    assert gather.wait_s(True) == 0.375
    assert await gather.settle(True) is True
    assert clock.slept == [0.375]
    # The next woken pass begins now, and gathers from here.
    gather.began(True)
    clock.now += 0.25
    assert await gather.settle(True) is True
    assert clock.slept == [0.375, 0.25]


async def test_a_commit_once_the_interval_has_passed_is_handled_at_once():
    gather, clock = gathering(0.1)
    gather.began(True)
    clock.now += 0.1
    assert await gather.settle(True) is False
    clock.now += 5
    assert await gather.settle(True) is False
    assert clock.slept == []


async def test_passes_of_the_timer_start_no_gather():
    gather, clock = gathering(0.1)
    gather.began(True)
    clock.now += 0.5  # a quiet spell, then the timer's passes
    gather.began(False)
    clock.now += 0.01
    gather.began(False)
    clock.now += 0.01
    assert await gather.settle(True) is False
    assert clock.slept == []


async def test_a_pass_not_woken_by_a_commit_never_waits():
    gather, clock = gathering(0.1)
    gather.began(True)
    clock.now += 0.01
    assert gather.wait_s(False) == 0.0
    assert await gather.settle(False) is False
    assert clock.slept == []


async def test_no_interval_never_waits():
    gather, clock = gathering(0.0)
    gather.began(True)
    assert await gather.settle(True) is False
    assert clock.slept == []


async def test_settling_without_a_wait_hands_no_control_to_the_event_loop():
    gather, clock = gathering(0.1)
    gather.began(True)
    clock.now += 1
    ran: list[str] = []
    other = asyncio.get_running_loop().call_soon(ran.append, "other")
    await gather.settle(True)
    assert ran == [], "a settle without a wait let another callback run"
    other.cancel()


async def test_by_default_it_sleeps_on_the_event_loop():
    gather = Gathering(60.0)
    gather.began(True)
    settling = asyncio.create_task(gather.settle(True))
    await asyncio.sleep(0)
    assert not settling.done(), "a woken pass right after another did not wait"
    settling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await settling
    assert settling.cancelled()
