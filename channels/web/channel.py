"""The web inbox channel: mounts the pages on the app and announces the login URL once the server listens.

It delivers nothing: the inbox reads threads from the store and polls for changes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

import structlog
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bot.channel import BackgroundTask, Channel
from bot.config import Settings
from bot.logs import say
from bot.signin import LINK_PATH, SignInLinks
from channels.web.auth import Auth
from channels.web.login import Login
from channels.web.pages import Pages
from channels.web.render import STATIC_DIR, Renderer

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bot.service import Service

log = structlog.get_logger("opsgate.web")
ANNOUNCE_SETTLE_SECONDS = 0.3
ANNOUNCE_WAIT_SECONDS = 30.0


class WebChannel(Channel):
    """The local web inbox at ``/``."""

    name: ClassVar[str] = "web"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.auth = Auth(settings)
        self.renderer = Renderer()

    @property
    def base_url(self) -> str:
        """Where this process serves the inbox, as a browser on this machine reaches it."""
        host = self.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.settings.port}"

    def routes(self, service: Service) -> list[Route | Mount]:
        self.auth.bind(service.store)
        journal = service.journal
        links = SignInLinks(self.settings, service.store, journal.channels, journal.outbox_ready, self.base_url)
        pages = Pages(self.settings, service, self.auth, self.renderer)
        login = Login(self.settings, self.auth, self.renderer, links)
        return [
            Route("/", pages.list_page, methods=["GET"], name="web_list"),
            Route("/events", pages.list_events, methods=["GET"], name="web_list_events"),
            Route("/new", pages.new_page, methods=["GET"], name="web_new"),
            Route("/quarantine", pages.quarantine_page, methods=["GET"], name="web_quarantine"),
            Route("/new", pages.new_submit, methods=["POST"], name="web_new_submit"),
            Route("/t/{thread_id}", pages.thread_page, methods=["GET"], name="web_thread"),
            Route("/t/{thread_id}/events", pages.thread_events, methods=["GET"], name="web_thread_events"),
            Route("/t/{thread_id}/decide", pages.decide, methods=["POST"], name="web_decide"),
            Route("/t/{thread_id}/message", pages.message, methods=["POST"], name="web_message"),
            Route("/t/{thread_id}/cancel", pages.cancel, methods=["POST"], name="web_cancel"),
            Route("/login", login.page, methods=["GET"], name="web_login"),
            Route("/login", login.submit, methods=["POST"], name="web_login_submit"),
            Route(LINK_PATH, login.link_page, methods=["GET"], name="web_link"),
            Route(LINK_PATH, login.use_link, methods=["POST"], name="web_link_use"),
            Route("/login/link/request", login.request_link, methods=["POST"], name="web_link_request"),
            Route("/logout", login.logout, methods=["POST"], name="web_logout"),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="web_static"),
        ]

    def mount(self, app: FastAPI, service: Service) -> None:
        """Add the inbox's routes; the JSON API keeps /threads."""
        app.router.routes.extend(self.routes(service))

    def background(self, service: Service) -> list[BackgroundTask]:
        return [self.announce]

    async def announce(self) -> None:
        """Print (and log) how to open the inbox once the port accepts connections, then idle."""
        await _wait_for_port(self.base_url, ANNOUNCE_WAIT_SECONDS)
        await asyncio.sleep(ANNOUNCE_SETTLE_SECONDS)  # let the start-up log lines go first: the URL comes last
        url = self.auth.login_url(self.base_url)
        if url is not None:
            log.info("web_login_url", url=url)
            say(f"\nopsgate inbox: open {url} to log in\n")  # after the log line, through the same writer
        else:
            say(f"opsgate inbox: {self.base_url}/ (log in with a personal token from "
                "`opsgate tokens create --user YOU`, or a sign-in link)")
            log.info("web_inbox", url=f"{self.base_url}/", login="personal token or sign-in link")
        await asyncio.Event().wait()  # a background task is a loop; stay until cancelled at shutdown


async def _wait_for_port(base_url: str, within: float) -> None:
    """Until a TCP connection succeeds (or ``within`` seconds pass: announce anyway)."""
    host_port = base_url.split("//", 1)[1]
    host, _, port = host_port.rpartition(":")
    host = host.strip("[]")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
