"""Answers to one person that need no durability: ephemeral notes and modals, sent after the HTTP ack.

They cannot go through the outbox: an ephemeral note about a refused click changes no thread, and a modal's
trigger_id expires three seconds after the click. They run as held tasks (never fire-and-forget), failures
are logged with the traceback, and ``aclose`` waits for the stragglers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog
from slack_sdk.web.async_client import AsyncWebClient

from channels.slack import limits
from channels.slack.slack_blocks import Block

log = structlog.get_logger("opsgate.slack")


class Notices:
    """Ephemeral messages and modal openings, each a held task."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._tasks: set[asyncio.Task[None]] = set()

    def ephemeral(self, channel: str | None, user: str, text: str, thread_ts: str | None = None) -> None:
        """Show ``text`` (already escaped by its builder) to ``user`` only, next to the message they acted on."""
        if channel is None:
            log.warning("slack_ephemeral_without_channel", user=user, text=text)
            return
        self._spawn("chat.postEphemeral", self.client.chat_postEphemeral(
            channel=channel, user=user, text=limits.fit(text, limits.TEXT), thread_ts=thread_ts,
        ))

    def open_view(self, trigger_id: str, view: Block) -> None:
        """Open a modal for the person who clicked (the trigger is valid for 3 s)."""
        self._spawn("views.open", self.client.views_open(trigger_id=trigger_id, view=view))

    def _spawn(self, method: str, call: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(method, call), name=f"slack {method}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, method: str, call: Coroutine[Any, Any, Any]) -> None:
        try:
            await call
        except Exception:
            log.exception("slack_notice_failed", method=method)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, seconds: float = 5.0) -> None:
        """Wait up to ``seconds`` for notices in flight (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=seconds)

    async def aclose(self) -> None:
        """Give notices in flight a moment, then cancel what is left."""
        await self.drain()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
