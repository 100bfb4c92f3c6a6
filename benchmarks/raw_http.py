"""A lean HTTP/1.1 load client: keep-alive connections opened beforehand, requests prepared as bytes.

A latency benchmark on a 2-core machine has no other host to drive the load from, so the client's own cost
lands in the figures: httpx spends about a millisecond of CPU per request, and 200 requests started at once
queue for a few hundred milliseconds inside the client before the first byte leaves. This client writes
prepared bytes on connections opened before the clock starts, and reads just enough of each answer (status
line, ``Content-Length``) to know it is complete, so what it times is the server: from the request's last byte
written to the answer's last byte read. Like wrk or h2load, it does not time connection set-up, unless
``fresh``: then every request opens its own connection inside the timed span (a sender that never reuses one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

Answer = tuple[int | str, float]  # status (or the error's name) and seconds


def request_bytes(host: str, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """One HTTP/1.1 request with a Content-Length body, ready to write."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "content-length"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer timed on arrival of the last byte."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._answer: asyncio.Future[Answer] | None = None
        self._began = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None and self._answer is None
        self._answer = asyncio.get_running_loop().create_future()
        self._buffer = b""
        self.transport.write(request)
        self._began = time.perf_counter()
        return self._answer

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0 or self._answer is None:
            return
        head = self._buffer[:head_end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            elif name.strip().lower() == "transfer-encoding":
                raise RuntimeError("chunked answers are not expected from this endpoint")
        if len(self._buffer) - head_end - 4 >= length:
            answer, self._answer = self._answer, None
            if not answer.done():
                answer.set_result((int(head[0].split()[1]), time.perf_counter() - self._began))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result((type(exc).__name__ if exc else "ConnectionClosed", 0.0))
        self.transport = None


async def post_all(host: str, port: int, requests: Sequence[bytes], concurrency: int,
                   fresh: bool = False) -> list[Answer]:
    """Send every request with ``concurrency`` connections (each one request at a time); answers in order.

    ``fresh``: a new connection per request, its set-up timed with the request.
    """
    loop = asyncio.get_running_loop()
    if fresh:
        return await _post_fresh(host, port, requests, concurrency)
    opened = await asyncio.gather(*(
        loop.create_connection(_Connection, host, port) for _ in range(min(concurrency, len(requests)))
    ))
    connections = [protocol for _, protocol in opened]
    answers: list[Answer | None] = [None] * len(requests)
    queue = iter(enumerate(requests))

    async def drive(connection: _Connection) -> None:
        for index, request in queue:
            if connection.transport is None:
                answers[index] = ("ConnectionClosed", 0.0)
                continue
            answers[index] = await connection.send(request)

    try:
        await asyncio.gather(*(drive(c) for c in connections))
    finally:
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
    return [a if a is not None else ("NotSent", 0.0) for a in answers]


async def _post_fresh(host: str, port: int, requests: Sequence[bytes], concurrency: int) -> list[Answer]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)

    async def one(request: bytes) -> Answer:
        async with gate:
            began = time.perf_counter()
            try:
                transport, connection = await loop.create_connection(_Connection, host, port)
            except OSError as exc:
                return type(exc).__name__, time.perf_counter() - began
            try:
                status, _ = await connection.send(request)
            finally:
                transport.close()
            return status, time.perf_counter() - began

    return list(await asyncio.gather(*(one(r) for r in requests)))
