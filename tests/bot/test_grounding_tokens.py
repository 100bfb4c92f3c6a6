"""``grounding.tokens`` takes a shortcut through ``normalize``; it must find exactly what the plain definition finds."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.grounding import _TOKEN, normalize, tokens


def plain_tokens(text: str) -> set[str]:
    """The definition: each match normalized, trailing separators dropped, and each part of a joined value."""
    found: set[str] = set()
    for raw in _TOKEN.findall(text.lower()):
        token = normalize(raw)
        while token and token[-1] in ".-/:":
            token = token[:-1]
        if token:
            found.add(token)
            found.update(normalize(part) for part in re.split(r"[@:/]", token) if part)
    return found


# Texts built from the characters that matter here (separators, dots, a "v" before digits, quotes), plus any text.
_PIECES = st.sampled_from(["v", "V", "1", "2.", ".", "-", "/", ":", "@", "+", "_", "api", " ", "'", '"', "(", ")",
                           "!", ",", "é", "İ", "\n", "v1.2.3", "..", "x"])
_TEXTS = st.one_of(st.lists(_PIECES, max_size=30).map("".join), st.text(max_size=60))


@settings(max_examples=3000, deadline=None)
@given(_TEXTS)
@example("deploy v1.4.2 to prod.")
@example("api@v1.4.2: team/web-frontend, (v2.0.0). v. v1- v-1 a.-")
@example("x@.:/v9..")
def test_tokens_match_the_plain_definition(text: str) -> None:
    assert tokens(text) == plain_tokens(text)
