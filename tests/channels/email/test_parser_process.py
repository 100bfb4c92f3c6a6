"""Mail parsed in a worker process: same result as in-process, and a dead worker costs one mail, not the channel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from channels.email import parser_process
from channels.email.inbound import Oversize, parse_mail
from channels.email.parser_process import ParserCrashed, parse_in_worker

RAW = b"From: Alice <alice@example.com>\r\nSubject: hi\r\nMessage-ID: <w@example.com>\r\n\r\ndeploy api\r\n"


async def test_the_worker_parses_like_the_function() -> None:
    """The worker's result equals parse_mail's, the Oversize marker included."""
    assert await parse_in_worker(RAW) == parse_mail(RAW)
    oversize = Oversize(size=9_000_000, limit=5_000_000)
    assert await parse_in_worker(RAW, oversize) == parse_mail(RAW, oversize)


async def test_a_killed_worker_fails_one_mail_and_is_replaced() -> None:
    """SIGKILL the worker (as the OOM killer would): that parse raises ParserCrashed, the next one works."""
    await parse_in_worker(RAW)
    pool = parser_process._pool
    assert pool is not None
    for pid in list(pool._processes):  # the worker processes of the running pool
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(ParserCrashed):
        await parse_in_worker(RAW)
    assert (await parse_in_worker(RAW)).text == "deploy api"
    assert parser_process._pool is not pool


_SERVER = """
import asyncio, os
from channels.email import parser_process
RAW = b"Subject: hi\\r\\n\\r\\ndeploy api\\r\\n"
async def main():
    await parser_process.parse_in_worker(RAW)
    print(*parser_process._pool._processes, flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_the_worker_exits_when_the_server_is_killed() -> None:
    """A SIGKILLed server leaves no parser process behind (it used to live on, orphaned, forever)."""
    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        workers = [int(pid) for pid in server.stdout.readline().split()]
        assert workers and all(_running(pid) for pid in workers)
    finally:
        server.kill()
        server.wait()
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in workers):
        assert time.monotonic() < deadline, f"parser processes {workers} outlived the server"
        time.sleep(0.1)
