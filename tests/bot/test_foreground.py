"""Acks first: background turns wait while acks are in flight, and still get one turn per ``max_defer``."""

from __future__ import annotations

import asyncio
import time

from bot.foreground import Foreground


async def test_a_turn_is_immediate_when_no_ack_is_in_flight() -> None:
    foreground = Foreground(settle=0.01, max_defer=1.0)
    began = time.monotonic()
    for _ in range(100):
        await foreground.turn()
    assert time.monotonic() - began < 0.05 and foreground.deferred == 0


async def test_turns_wait_for_the_acks_then_all_run() -> None:
    foreground = Foreground(settle=0.01, max_defer=10.0)
    ran: list[int] = []

    async def background(n: int) -> None:
        await foreground.turn()
        ran.append(n)

    with foreground.serving():
        tasks = [asyncio.create_task(background(n)) for n in range(5)]
        await asyncio.sleep(0.1)
        assert ran == []  # an ack in flight: nothing in the background runs
    began = time.monotonic()
    await asyncio.gather(*tasks)
    assert sorted(ran) == list(range(5)) and foreground.deferred == 5
    assert time.monotonic() - began < 0.5  # released once the acks were quiet for ``settle``


async def test_a_flood_of_acks_lets_one_turn_through_per_max_defer() -> None:
    """Background work is slowed by a flood, never stopped: one unit per ``max_defer`` while acks keep coming."""
    foreground = Foreground(settle=0.01, max_defer=0.05)
    ran: list[float] = []

    async def background() -> None:
        await foreground.turn()
        ran.append(time.monotonic())

    with foreground.serving():
        began = time.monotonic()
        tasks = [asyncio.create_task(background()) for _ in range(20)]
        await asyncio.sleep(0.32)
        during = len(ran)
    await asyncio.gather(*tasks)
    assert 3 <= during <= 8  # about 0.32 / 0.05 turns, one at a time
    assert all(b - a >= 0.04 for a, b in zip(ran[:during], ran[1:during], strict=False))
    assert ran[0] - began >= 0.04 and len(ran) == 20


async def test_a_cancelled_waiter_does_not_take_a_turn_from_the_others() -> None:
    foreground = Foreground(settle=0.01, max_defer=0.05)
    ran: list[str] = []

    async def background(name: str) -> None:
        await foreground.turn()
        ran.append(name)

    with foreground.serving():
        gone = asyncio.create_task(background("gone"))
        kept = asyncio.create_task(background("kept"))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0.08)
        assert ran == ["kept"]  # the one starved turn went to a waiter still there
    await asyncio.gather(gone, return_exceptions=True)
    await kept
