"""Loops sleep with bot.wakeups.wait_set: woken by the event, by the time, and never deaf to a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from bot.wakeups import wait_set


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
