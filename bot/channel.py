"""What a channel (Slack, email, web inbox, CLI) plugs into: converters out, delivery, routes, background loops.

Channels are mostly pure converters: ``outbound`` turns new thread events into outbox items (written in the
same transaction as the events), ``deliver`` sends one item. Inbound traffic calls the ``Service``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from bot.events import Event
from bot.store import OutboxItem, OutboxRow
from bot.thread import Thread

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bot.service import Service

BackgroundTask = Callable[[], Awaitable[None]]


class Channel:
    """Base channel: override what applies. Every method has a harmless default."""

    name: ClassVar[str] = "base"
    service: Service

    def bind(self, service: Service) -> None:
        """Called once by the wiring before anything else, so deliver() can reach the store and service."""
        self.service = service

    def outbound(self, thread: Thread, new: Sequence[Event]) -> list[OutboxItem]:
        """Messages to send because ``new`` events were appended to ``thread`` (pure; no I/O)."""
        return []

    def direct_message(self, identity: str, subject: str, text: str) -> OutboxItem | None:
        """A private message to ``identity`` on this channel (a sign-in link), or None if it cannot reach it."""
        return None

    async def deliver(self, row: OutboxRow) -> None:
        """Send one outbox item; raise DeliveryRetry (try later) or DeliveryFailed (give up)."""
        raise NotImplementedError(f"{self.name} channel delivers nothing")

    def mount(self, app: FastAPI, service: Service) -> None:
        """Add this channel's HTTP routes to the app (optional)."""

    def background(self, service: Service) -> list[BackgroundTask]:
        """Long-running loops to run beside the HTTP server (IMAP watcher, Socket Mode...)."""
        return []

    async def aclose(self) -> None:
        """Release connections."""
