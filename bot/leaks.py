"""Instructions never reach people: text the model addresses to people is checked against its instructions.

A leak is a run of ``RUN`` or more consecutive words shared with the agent's prompt or opsgate's fixed
instructions (case, punctuation and markup ignored), unless the person wrote that same run themselves (quoting
someone back is not a leak). Pure functions; the engine replaces a leaking text and records it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

RUN = 8  # words: long enough that ordinary replies ("deploy api 1.2.3 to production") never match by chance
_WORD = re.compile(r"[a-z0-9]+(?:['’.][a-z0-9]+)*")


def words(text: str) -> list[str]:
    """The lower-case words of a text, markup and punctuation dropped."""
    return _WORD.findall(text.lower())


def _shingles(seq: Sequence[str], size: int = RUN) -> set[tuple[str, ...]]:
    return {tuple(seq[i:i + size]) for i in range(len(seq) - size + 1)}


@lru_cache(maxsize=64)
def _instruction_shingles(instructions: tuple[str, ...]) -> frozenset[tuple[str, ...]]:
    return frozenset().union(*(_shingles(words(text)) for text in instructions))


@dataclass(frozen=True)
class Leak:
    """The longest run of the instructions found in the text."""

    excerpt: str
    words: int


def find_leak(text: str, instructions: Iterable[str], people_said: Iterable[str] = ()) -> Leak | None:
    """The instructions' words the text repeats (``RUN`` or more in a row), or None."""
    known = _instruction_shingles(tuple(instructions))
    if not known:
        return None
    own = frozenset().union(*(_shingles(words(t)) for t in people_said))
    seq = words(text)
    best: tuple[int, int] | None = None  # start, length of the longest leaking run
    index = 0
    while index <= len(seq) - RUN:
        window = tuple(seq[index:index + RUN])
        if window in known and window not in own:
            end = index + RUN
            while end < len(seq) and tuple(seq[end - RUN + 1:end + 1]) in known:
                end += 1
            if best is None or end - index > best[1]:
                best = (index, end - index)
            index = end
        else:
            index += 1
    if best is None:
        return None
    start, length = best
    return Leak(" ".join(seq[start:start + length]), length)
