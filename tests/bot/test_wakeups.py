"""Loops sleep with bot.wakeups.wait_set: woken by the event, by the time, and never deaf to a cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.wakeups import Alarm, wait_set


async def test_the_event_wakes_it_and_the_time_ends_it() -> None:
    """True when the event is set meanwhile, False when the time passed first."""
    event = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_set(event, 5) is True
    assert await wait_set(asyncio.Event(), 0.01) is False


async def test_a_cancel_as_the_event_is_set_is_not_lost() -> None:
    """The event set and the task cancelled in the same loop turn: the cancellation wins (asyncio.wait_for on
    Python 3.11 returned normally here, and a loop stopped this way ran on forever)."""
    event = asyncio.Event()
    task = asyncio.create_task(wait_set(event, 10))
    await asyncio.sleep(0)  # the task is waiting now
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancel_while_waiting_propagates() -> None:
    task = asyncio.create_task(wait_set(asyncio.Event(), 10))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_alarm_wakes_its_sleeper_only_for_something_earlier() -> None:
    """A ring for a time after the sleeper's own wake-up is ignored; one before it, or with no time, wakes it."""
    alarm = Alarm()
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, alarm.ring, time.time() + 3600)  # an approval timer an hour away
    began = time.monotonic()
    assert await alarm.sleep(0.2) is False and time.monotonic() - began >= 0.19
    loop.call_later(0.01, alarm.ring, time.time() + 0.05)  # due before the sleep would end
    assert await alarm.sleep(5) is True
    loop.call_later(0.01, alarm.ring)
    assert await alarm.sleep(5) is True


async def test_an_awake_sleeper_hears_every_ring() -> None:
    """Rung while it is not asleep (it is reading the database), the next sleep returns at once: nothing is missed."""
    alarm = Alarm()
    alarm.ring(time.time() + 3600)
    assert await alarm.sleep(5) is True
    assert alarm.event.is_set() is False  # consumed by that sleep
