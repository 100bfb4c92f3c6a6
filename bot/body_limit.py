"""Refusing oversized HTTP request bodies before anything reads or parses them (every route: API, inbox, Slack).

A declared Content-Length over the limit is answered 413 before the app sees the request; a body sent without
one (chunked) is counted as it arrives, and passing the limit answers 413 and ends the app's reading as if the
client had gone away. Either way nothing is parsed: what the client is still sending is read and dropped (up to
a bound), only so that it gets to read the answer.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A client still sending its body only sees our answer if we read what it sends first (the server closes the
# connection after answering); past this many times the limit we stop reading and the connection closes under it.
_DRAIN_FACTOR = 8


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


class BodyLimit:
    """ASGI middleware: at most ``limit`` bytes of request body per request."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and not declared.isdigit():
            await self._refuse(scope, receive, send, 400, "Content-Length is not a number")
            return
        if declared is not None and (len(declared) > 18 or int(declared) > self.limit):
            if len(declared) <= 18 and int(declared) <= _DRAIN_FACTOR * self.limit:
                await self._drain(receive)
            await self._refuse(scope, receive, send, 413, _too_large(self.limit))
            return
        received = 0
        state = {"started": False, "refused": False}

        async def counted_receive() -> Message:
            nonlocal received
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit and not state["started"]:
                    # Answer now and tell the app the client went away: whatever it makes of that is dropped.
                    state["refused"] = True
                    if message.get("more_body", False):
                        await self._drain(receive)
                    await self._refuse(scope, receive, send, 413, _too_large(self.limit))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted_receive, guarded_send)

    async def _drain(self, receive: Receive) -> None:
        """Read and drop what the client is still sending, up to a bound, so it gets to read our 413."""
        budget = _DRAIN_FACTOR * self.limit
        while budget > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            budget -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
