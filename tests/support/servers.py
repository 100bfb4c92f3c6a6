"""Run any ASGI app with uvicorn on 127.0.0.1 in a background thread with its own event loop.

A thread (not a task on the test's loop) so the server keeps answering while a test blocks, and so a
subprocess `opsgate serve` can be pointed at it just as well as in-process code.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BackgroundServer:
    """One uvicorn server for ``app`` in a daemon thread; ``start()`` returns once the socket accepts."""

    def __init__(self, app: ASGIApp, port: int | None = None, *, name: str = "test-server") -> None:
        self.app = app
        self.name = name
        # Binding the socket here (port 0 = let the OS choose) removes the pick-a-port-then-bind race. The protocol
        # number must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and without it
        # every response on a kept-alive connection waited ~40 ms (Nagle against the client's delayed ACK).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port or 0))
        self.port: int = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", ws="none", timeout_graceful_shutdown=1,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:40123."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start serving and wait until a TCP connection to the port succeeds."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._error is not None:
                raise RuntimeError(f"{self.name} failed to start: {self._error!r}") from self._error
            if self._server.started and _accepts(self.port):
                return
            time.sleep(0.01)
        self.stop()
        raise TimeoutError(f"{self.name} did not accept connections on port {self.port} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, force it if it lingers, and join the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            self._socket.close()
            return
        self._server.should_exit = True
        thread.join(timeout / 2)
        if thread.is_alive():
            self._server.force_exit = True
            thread.join(timeout / 2)
        self._socket.close()
        if thread.is_alive():
            raise RuntimeError(f"{self.name} did not stop within {timeout}s")

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # surfaced by start(); a dying server thread must not go unnoticed
            self._error = exc

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
