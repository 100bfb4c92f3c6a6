"""Log lines: JSON, one per call, written once per event-loop iteration (or at once outside a loop), in order."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime

import pytest
import structlog

from bot.logs import LineWriter, configure_logging, render_json, stamp_utc


class Recording(io.StringIO):
    """A stream that remembers each write call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_lines_of_one_loop_iteration_are_written_together_in_order() -> None:
    stream = Recording()
    writer = LineWriter(stream)

    async def commit_three() -> list[str]:
        for n in range(3):
            writer.info(f"line {n}")
        before = list(stream.writes)
        await asyncio.sleep(0)  # the iteration ends: the callback writes
        return before

    assert asyncio.run(commit_three()) == []
    assert stream.writes == ["line 0\nline 1\nline 2\n"]


def test_outside_a_loop_a_line_is_written_at_once_after_what_was_pending() -> None:
    stream = Recording()
    writer = LineWriter(stream)

    def log_and_stop() -> None:
        writer.info("from the loop")
        loop.stop()  # the loop stops (and closes) before its next iteration, where the write was due

    loop = asyncio.new_event_loop()
    loop.call_soon(log_and_stop)
    loop.run_forever()
    loop.close()
    assert stream.getvalue() == ""
    writer.info("from a command")
    assert stream.getvalue() == "from the loop\nfrom a command\n"


def test_lines_from_another_thread_and_the_loop_are_all_written() -> None:
    stream = Recording()
    writer = LineWriter(stream)

    async def both() -> None:
        writer.info("loop 1")
        thread = threading.Thread(target=lambda: [writer.info(f"thread {n}") for n in range(100)])
        thread.start()
        thread.join()
        writer.info("loop 2")
        await asyncio.sleep(0)

    asyncio.run(both())
    lines = stream.getvalue().splitlines()
    assert sorted(lines) == sorted(["loop 1", "loop 2", *(f"thread {n}" for n in range(100))])
    assert lines.index("loop 1") < lines.index("loop 2")


def test_structlog_and_standard_library_lines_share_the_writer_and_its_order(capsys: object) -> None:
    """Both kinds of record come out as JSON lines on stdout, in the order they were logged."""
    configure_logging("info", cache=False)

    async def log_both() -> None:
        structlog.get_logger("opsgate.test").info("first", n=1)
        logging.getLogger("opsgate_test.stdlib").warning("second")  # a library logging through the root
        structlog.get_logger("opsgate.test").info("third", n=3)
        await asyncio.sleep(0)

    asyncio.run(log_both())
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events == ["first", "second", "third"]


def test_a_forked_child_does_not_write_its_parents_pending_lines() -> None:
    """Lines pending in the parent at a fork are the parent's: the child writes only its own."""
    read, write = os.pipe()
    stream = Recording()
    writer = LineWriter(stream)

    def pending_then_fork() -> None:
        writer.info("parent's line")  # pending until the end of this loop iteration
        pid = os.fork()
        if pid == 0:
            writer.flush()
            os.write(write, stream.getvalue().encode() or b"nothing")
            os._exit(0)
        os.waitpid(pid, 0)

    async def main() -> None:
        asyncio.get_running_loop().call_soon(pending_then_fork)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    os.close(write)
    with os.fdopen(read) as pipe:
        assert pipe.read() == "nothing"
    assert stream.getvalue() == "parent's line\n"


def test_a_broken_stream_loses_the_lines_without_a_busy_error_cycle() -> None:
    """A closed stdout: the loop's lines are dropped, the loop goes on, nothing is logged about it in a cycle."""
    stream = Recording()
    stream.close()
    writer = LineWriter(stream)
    errors: list[object] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        writer.info("lost")
        for _ in range(5):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert errors == []


@pytest.mark.parametrize("now", [
    1_796_121_161.0, 1_796_121_161.000001, 1_796_121_161.5, 1_796_121_161.999999, 1_796_121_161.9999996, 0.25,
])
def test_the_timestamp_is_what_structlog_writes_for_the_same_instant(
    monkeypatch: pytest.MonkeyPatch, now: float,
) -> None:
    """ISO 8601 in UTC with a Z, microseconds only when there are any (as ``TimeStamper(fmt="iso", utc=True)``);
    the date and time of day are made once a second, so a new second must show."""
    monkeypatch.setattr(time, "time", lambda: now)
    stamped = stamp_utc(None, "info", {})["timestamp"]
    expected = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    assert stamped == expected
    monkeypatch.setattr(time, "time", lambda: now + 1)
    assert datetime.fromisoformat(stamp_utc(None, "info", {})["timestamp"]) == datetime.fromtimestamp(now + 1, UTC)


def test_lines_render_exactly_as_structlogs_json_renderer() -> None:
    class Custom:
        def __structlog__(self) -> str:
            return "custom!"

    event = {"event": "x", "n": 1.5, "nested": {"é": [1, None]}, "custom": Custom(), "other": object}
    assert render_json(None, "info", dict(event)) == structlog.processors.JSONRenderer()(None, "info", dict(event))
