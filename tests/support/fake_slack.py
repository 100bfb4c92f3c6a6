"""FakeSlack: a local Slack Web API over a real socket, answering with Slack's documented response shapes.

Point ``SLACK_API_URL`` at ``fake.api_url`` (it ends with "/", as slack_sdk needs). It answers auth.test,
chat.postMessage, chat.update, chat.postEphemeral, views.open and users.info; it checks the bearer token like
Slack (not_authed / invalid_auth), keeps the messages it was sent so chat.update can find them, records every
call (method, JSON or form arguments, headers), and can answer the next N calls of a method with an HTTP error,
e.g. 429 with Retry-After, or answer a method late. users.info knows the users added with ``add_user`` and
answers like Slack: ``missing_scope`` without users:read, ``profile.email`` only with users:read.email,
``user_not_found`` for anyone else. Like bolt's own tests/mock_web_api_server, but async and inspectable.

``FakeSocketMode`` is the other half of Socket Mode: apps.connections.open (app-level token) hands out its
``ws://`` URL; it greets with ``hello``, pushes envelopes and waits for each envelope's ack.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.asyncio.server import Server, ServerConnection, serve

from tests.support.servers import BackgroundServer

BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-1-A0TEST01-test-token"
BOT_USER_ID = "UBOT0001"
BOT_ID = "BBOT0001"
TEAM_ID = "T0TEST01"
DEFAULT_SCOPES = frozenset({"app_mentions:read", "chat:write", "chat:write.public", "im:history", "commands",
                            "users:read", "users:read.email"})
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata")


@dataclass(frozen=True)
class SlackCall:
    """One Web API request as received, and the status it was answered with."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    status: int
    at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class _Failure:
    remaining: int
    status: int
    retry_after: int | None
    error: str


class FakeSlack:
    """A Slack Web API on 127.0.0.1 that records calls; start with ``with FakeSlack() as slack:``."""

    def __init__(
        self, token: str = BOT_TOKEN, *, unknown_channels: tuple[str, ...] = (), app_token: str = APP_TOKEN,
        socket_url: str | None = None, scopes: frozenset[str] = DEFAULT_SCOPES,
    ) -> None:
        self.token = token
        self.scopes = scopes  # the bot token's scopes: users.info needs users:read, its email users:read.email
        self.users: dict[str, dict[str, Any]] = {}
        self.delays: dict[str, float] = {}
        self.app_token = app_token
        self.socket_url = socket_url  # what apps.connections.open hands out (a FakeSocketMode's url)
        self.unknown_channels = set(unknown_channels)  # chat.postMessage there -> channel_not_found
        self.calls: list[SlackCall] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) -> latest message
        self._failures: dict[str, _Failure] = {}
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._views = itertools.count(1)
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "views.open": self._views_open,
            "users.info": self._users_info,
            "apps.connections.open": lambda args: {},  # answered in _answer (app-level token)
        }
        app = Starlette(routes=[Route("/api/{method}", self._api, methods=["POST", "GET"])])
        self._server = BackgroundServer(app, name="fake-slack")

    # lifecycle

    @property
    def api_url(self) -> str:
        """The SLACK_API_URL to configure, e.g. http://127.0.0.1:40123/api/ (trailing slash included)."""
        return f"{self._server.url}/api/"

    def start(self) -> FakeSlack:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # scripting

    def fail_next(
        self, method: str, times: int = 1, *, status: int = 429, retry_after: int | None = 1,
        error: str = "ratelimited",
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``status`` (429 carries Retry-After)."""
        with self._lock:
            self._failures[method] = _Failure(times, status, retry_after if status == 429 else None, error)

    def add_user(
        self, user_id: str, *, email: str | None = None, team_id: str = TEAM_ID, deleted: bool = False,
        is_bot: bool = False, is_email_confirmed: bool = True,
    ) -> None:
        """A workspace member that users.info knows (``email`` None: a profile without an address)."""
        name = (email or user_id).split("@")[0].lower()
        profile: dict[str, Any] = {"real_name": name.title(), "display_name": name, "image_24": "https://x/24.png"}
        if email is not None:
            profile["email"] = email
        with self._lock:
            self.users[user_id] = {
                "id": user_id, "team_id": team_id, "name": name, "deleted": deleted, "real_name": name.title(),
                "tz": "Europe/Berlin", "is_admin": False, "is_owner": False, "is_bot": is_bot,
                "is_app_user": False, "is_restricted": False, "is_ultra_restricted": False,
                "is_email_confirmed": is_email_confirmed, "updated": int(time.time()), "profile": profile,
            }

    def delay(self, method: str, seconds: float) -> None:
        """Answer every call of ``method`` only after ``seconds`` (a slow Slack)."""
        self.delays[method] = seconds

    # inspection

    def calls_to(self, method: str, *, ok_only: bool = True) -> list[SlackCall]:
        """Calls of one method (only those answered 200, unless ``ok_only`` is False)."""
        with self._lock:
            return [c for c in self.calls if c.method == method and (c.ok or not ok_only)]

    # A deadline parameter (not asyncio.timeout) so the failure message can say what was expected.
    async def wait_for(
        self, method: str, match: Callable[[SlackCall], bool] | None = None, *, count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[SlackCall]:
        """Wait until ``count`` successful calls of ``method`` (matching ``match``) arrived; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls_to(method) if match is None or match(c)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = [(c.method, c.status) for c in self.calls]
                raise TimeoutError(f"expected {count} {method} call(s) within {timeout}s; got {seen}")
            await asyncio.sleep(0.02)

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The current state of a message we were sent (after updates)."""
        with self._lock:
            return self.messages[(channel, ts)]

    # HTTP

    async def _api(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        headers = {k.lower(): v for k, v in request.headers.items()}
        args = _arguments(await request.body(), headers.get("content-type", ""), dict(request.query_params))
        if self.delays.get(method):
            await asyncio.sleep(self.delays[method])
        status, body, extra = self._answer(method, args, headers)
        with self._lock:
            self.calls.append(SlackCall(method, args, headers, status))
        return JSONResponse(body, status_code=status, headers=extra)

    def _answer(
        self, method: str, args: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            failure = self._failures.get(method)
            if failure is not None and failure.remaining > 0:
                failure.remaining -= 1
                extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
                return failure.status, {"ok": False, "error": failure.error}, extra
        handler = self._handlers.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        token = headers.get("authorization", "").removeprefix("Bearer ").strip() or args.get("token")
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if method == "apps.connections.open":  # the one method that takes the app-level token
            if token != self.app_token:
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            if self.socket_url is None:
                return 200, {"ok": False, "error": "socket_mode_not_enabled"}, {}
            return 200, {"ok": True, "url": self.socket_url}, {}
        if token != self.token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        return 200, handler(args), {}

    # methods (run on the server thread)

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True, "url": "https://opsgate-test.slack.com/", "team": "opsgate test", "user": "opsgate",
            "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False,
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.unknown_channels:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        message = {
            "type": "message", "subtype": "bot_message", "text": args.get("text", ""), "ts": ts,
            "bot_id": BOT_ID, "user": BOT_USER_ID, "team": TEAM_ID,
            **({"blocks": args["blocks"]} if args.get("blocks") else {}),
            **({"thread_ts": args["thread_ts"]} if args.get("thread_ts") else {}),
        }
        with self._lock:
            self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = args.get("channel"), args.get("ts")
        with self._lock:
            message = self.messages.get((str(channel), str(ts)))
            if message is None:
                return {"ok": False, "error": "message_not_found"}
            message.update(text=args.get("text", message.get("text", "")), edited={"user": BOT_USER_ID, "ts": ts})
            if "blocks" in args:
                message["blocks"] = args["blocks"]
        return {"ok": True, "channel": channel, "ts": ts, "text": message["text"], "message": message}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        if not isinstance(view, dict) or view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        view_id = f"V{next(self._views):08d}"
        return {"ok": True, "view": {
            **view, "id": view_id, "team_id": TEAM_ID, "state": {"values": {}}, "hash": f"{time.time():.6f}",
            "root_view_id": view_id, "app_id": "A0TEST01", "bot_id": BOT_ID,
        }}


    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        if "users:read" not in self.scopes:
            return {"ok": False, "error": "missing_scope", "needed": "users:read",
                    "provided": ",".join(sorted(self.scopes))}
        with self._lock:
            user = self.users.get(str(args.get("user", "")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        user = json.loads(json.dumps(user))
        if "users:read.email" not in self.scopes:
            user["profile"].pop("email", None)
        return {"ok": True, "user": user}


def _arguments(body: bytes, content_type: str, query: dict[str, str]) -> dict[str, Any]:
    """JSON bodies as they are; form bodies with their JSON-encoded fields (blocks, view) decoded."""
    if body and content_type.startswith("application/json"):
        parsed = json.loads(body)
        return {**query, **(parsed if isinstance(parsed, dict) else {})}
    args: dict[str, Any] = {**query, **dict(parse_qsl(body.decode(), keep_blank_values=True))}
    for name in _JSON_FIELDS:
        if isinstance(args.get(name), str):
            try:
                args[name] = json.loads(args[name])
            except ValueError:
                pass
    return args


class FakeSocketMode:
    """Slack's Socket Mode side: a WebSocket server (own thread and loop) that pushes envelopes and awaits acks."""

    def __init__(self) -> None:
        self.acks: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-socket-mode", daemon=True)
        self._server: Server | None = None
        self._connections: list[ServerConnection] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=fake"

    def start(self) -> FakeSocketMode:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])  # type: ignore[index]
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def connected(self) -> int:
        return sum(1 for c in self._connections if c.state.name == "OPEN")

    async def push(
        self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool = False,
        timeout: float = 10.0, retry_attempt: int = 0,  # noqa: ASYNC109
    ) -> tuple[dict[str, Any], float]:
        """Send one envelope (events_api, interactive, slash_commands); return the ack and seconds until it came.

        ``retry_attempt`` marks Slack's re-delivery of an envelope that was not acknowledged (TimeoutError: no ack).
        """
        future = asyncio.run_coroutine_threadsafe(
            self._push(kind, payload, accepts_response_payload, timeout, retry_attempt), self._loop)
        return await asyncio.wrap_future(future)

    async def _serve(self) -> Server:
        return await serve(self._handle, "127.0.0.1", 0)

    async def _handle(self, connection: ServerConnection) -> None:
        self._connections.append(connection)
        await connection.send(json.dumps({
            "type": "hello", "num_connections": len(self._connections),
            "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 18060},
            "connection_info": {"app_id": "A0TEST01"},
        }))
        async for raw in connection:
            message = json.loads(raw)
            self.acks.append(message)
            waiting = self._pending.pop(str(message.get("envelope_id")), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(message)

    async def _push(
        self, kind: str, payload: dict[str, Any], accepts_response_payload: bool, timeout: float,  # noqa: ASYNC109
        retry_attempt: int,
    ) -> tuple[dict[str, Any], float]:
        deadline = time.monotonic() + timeout
        while not self.connected:
            if time.monotonic() > deadline:
                raise TimeoutError("no Socket Mode client connected")
            await asyncio.sleep(0.02)
        connection = next(c for c in reversed(self._connections) if c.state.name == "OPEN")
        envelope_id = str(uuid.uuid4())
        acked: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[envelope_id] = acked
        started = time.perf_counter()
        await connection.send(json.dumps({
            "envelope_id": envelope_id, "type": kind, "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else "", "payload": payload,
        }))
        ack = await asyncio.wait_for(acked, max(0.1, deadline - time.monotonic()))
        return ack, time.perf_counter() - started
