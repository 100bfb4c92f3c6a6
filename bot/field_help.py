"""Action fields in plain words: what a field allows, and validation errors without regular expressions.

People editing an action in the inbox or at the CLI prompt see "letters, digits and . _ -, at most 128
characters", never ``^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

_PIECE = re.compile(r"\[([^\]]+)\](\{(\d+)(?:,(\d*))?\}|[*+?])?")
_RANGES = {"A-Z": "capital letters", "a-z": "small letters", "0-9": "digits"}


def _class_words(body: str) -> tuple[str, str]:
    """A character class as (all it allows, one of it): ``letters, digits and . _ -``, ``letter or digit``."""
    kinds = [name for rng, name in _RANGES.items() if rng in body]
    rest = body
    for rng in _RANGES:
        rest = rest.replace(rng, "")
    if "capital letters" in kinds and "small letters" in kinds:
        kinds = ["letters", *[k for k in kinds if not k.endswith("letters")]]
    symbols = " ".join(dict.fromkeys(rest.replace("\\", "")))
    allowed = ", ".join(kinds) + (f" and {symbols}" if symbols and kinds else symbols)
    one = " or ".join(k.removesuffix("s") for k in kinds)
    return allowed, one or f"one of {symbols}"


def _longest(quantifier: str | None, low: str | None, high: str | None) -> int | None:
    """How many characters a class with this quantifier may match (None: no limit)."""
    if quantifier is None or quantifier == "?":
        return 1
    if quantifier in ("*", "+"):
        return None
    if high is None:  # {n}
        return int(low or 0)
    return int(high) if high else None  # {n,m} or {n,}


def pattern_in_words(pattern: str) -> str | None:
    """``^[A-Z][a-z0-9]{0,9}$`` as words, or None when the pattern is not a simple run of character classes."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return None
    body = pattern[1:-1]
    pieces = list(_PIECE.finditer(body))
    if not pieces or "".join(p.group(0) for p in pieces) != body:
        return None
    longest: int | None = 0
    for piece in pieces:
        most = _longest(piece.group(2), piece.group(3), piece.group(4))
        longest = None if longest is None or most is None else longest + most
    allowed, _ = _class_words(pieces[-1].group(1))
    words = f"only {allowed}"
    if len(pieces) > 1 and pieces[0].group(1) != pieces[-1].group(1):
        words += f", starting with a {_class_words(pieces[0].group(1))[1]}"
    if longest is not None:
        words += f", at most {longest} characters"
    return words


def field_hint(prop: dict[str, Any]) -> str:
    """What a field of an action's JSON schema accepts: its choices, or its description and allowed characters."""
    choices = prop.get("enum") or [c.get("const") for c in prop.get("anyOf", []) if "const" in c]
    if choices:
        return "one of " + ", ".join(str(c) for c in choices)
    parts = [str(prop["description"]).rstrip(".")] if prop.get("description") else []
    pattern = prop.get("pattern") or next((c.get("pattern") for c in prop.get("anyOf", []) if c.get("pattern")), None)
    words = pattern_in_words(pattern) if pattern else None
    if words:
        parts.append(words)
    return "; ".join(parts)


def describe_error(err: Any) -> str:
    """One pydantic error in plain words (the field name is added by the caller)."""
    if err["type"] == "extra_forbidden":
        return "unknown argument"
    if err["type"] == "string_pattern_mismatch":
        words = pattern_in_words(str(err.get("ctx", {}).get("pattern", "")))
        shown = repr(err["input"]) if isinstance(err.get("input"), str) and err["input"] else "this value"
        return f"{shown} is not allowed: use {words}" if words else f"{shown} is not in the expected form"
    message = str(err["msg"] or "invalid")
    return message[0].lower() + message[1:]


def describe_validation(exc: ValidationError) -> str:
    """``version: 'v 1' is not allowed: use only letters, digits and . _ + -, …; environment: …``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {describe_error(err)}" for err in exc.errors()
    )


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Each top-level field's first problem in plain words, for showing next to that field."""
    found: dict[str, str] = {}
    for err in exc.errors():
        if err["loc"]:
            found.setdefault(str(err["loc"][0]), describe_error(err))
    return found
