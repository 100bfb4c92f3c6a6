"""The lean load client: answers read whole and in order, keep-alive connections reused, fresh ones not."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.raw_http import post_all, request_bytes


class CountingServer:
    """A real HTTP/1.1 server on loopback: answers each request with its body length, counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
                self.requests += 1
                answer = str(len(body)).encode()
                status = b"200 OK" if body.startswith(b"ok") else b"401 Unauthorized"
                # The answer arrives in two writes: the client must wait for the whole body.
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(answer)).encode()
                             + b"\r\n\r\n")
                await writer.drain()
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize(("fresh", "connections"), [(False, 5), (True, 40)])
async def test_every_request_is_answered_in_order(fresh: bool, connections: int) -> None:
    counting = CountingServer()
    server = await asyncio.start_server(counting.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        bodies = [(b"ok" if i % 4 else b"no") + b"x" * i for i in range(40)]
        requests = [request_bytes(f"127.0.0.1:{port}", "POST", "/slack/events", body, {"X-Test": "1"})
                    for body in bodies]
        answers = await post_all("127.0.0.1", port, requests, concurrency=5, fresh=fresh)
    finally:
        server.close()
        await server.wait_closed()
    assert [status for status, _ in answers] == [401 if i % 4 == 0 else 200 for i in range(40)]
    assert all(seconds > 0 for _, seconds in answers)
    assert counting.requests == 40 and counting.connections == connections
