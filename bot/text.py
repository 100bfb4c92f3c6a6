"""Text that every backend can store, whichever channel it came from.

PostgreSQL rejects U+0000 (NUL) in ``text`` and ``jsonb``, and no database can take a lone surrogate (what a
mail decoded with ``surrogateescape`` or a broken JSON ``\\ud800`` escape leaves behind): it is not UTF-8 at all.
SQLite would store both, so the same message would work on one backend and fail on the other. We replace each
such character with U+FFFD (the replacement character) rather than dropping it, so ``deploy\\0api`` never turns
into the different word ``deployapi`` and a reader can see that something was there. Every other character,
control characters included, is kept as it was.

Keys (a Slack ts, an email Message-ID) must also fit their 255-character columns, which only PostgreSQL
enforces: ``storable_key`` shortens long ones the same way every time, so a lookup by the raw key still finds them.

``StorableModel`` applies this to every string a model is built from (nested dicts and lists included), so the
events, refs and outbox items that enter the core are storable however a channel built them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Self

from pydantic import BaseModel, ValidationInfo, model_validator

REPLACEMENT = "\ufffd"
KEY_CHARS = 255  # refs.key and quarantine.key: PostgreSQL refuses longer values, SQLite would keep them
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD (the same object when nothing needs replacing)."""
    if text.isascii():  # the common case: only NUL can be a problem
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    return _UNSTORABLE.sub(REPLACEMENT, text)


def storable_key(key: str, limit: int = KEY_CHARS) -> str:
    """A channel key that fits its column on every backend: storable, and when longer than ``limit``, its start
    plus a digest of the whole (still unique, still readable, and the same for the same raw key at lookup)."""
    if len(key) > limit:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        key = f"{key[:limit - 41]}…{digest}"
    return storable(key)


def storable_data(value: Any) -> Any:
    """``value`` with every string in it (dict keys, list items, nested) made storable; other values unchanged.

    Returns ``value`` itself when nothing needed replacing (the common case: no copies on every event load).
    """
    # Looked at once first, without building anything (~1 µs for an action's arguments, not ~5); only data that
    # holds something to replace is rebuilt.
    return value if _plain(value) else _cleaned(value)


def _plain(value: Any) -> bool:
    """Whether every string in ``value`` (as ``_cleaned`` walks it) is storable already."""
    if isinstance(value, str):
        return value.isascii() and "\x00" not in value or storable(value) is value
    if isinstance(value, dict):
        for key, item in value.items():
            if not (_plain(key) and _plain(item)):
                return False
        return True
    if type(value) in (list, tuple):
        for item in value:
            if not _plain(item):
                return False
    return True


def _cleaned(value: Any) -> Any:
    """``storable_data``'s rebuild: the parts that needed nothing replaced are kept as the same objects."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        pairs = [(_cleaned(k), _cleaned(v)) for k, v in value.items()]
        if all(nk is k and nv is v for (nk, nv), (k, v) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if type(value) in (list, tuple):  # exactly these: a subclass (a named tuple) is rebuilt differently
        items = [_cleaned(v) for v in value]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            return type(value)(items)
        return value
    return value


# Validation context for values read back from the database: stored, so storable already (on PostgreSQL nothing
# else could have been written; on SQLite every row came through a model), and not walked again on every load.
STORED: dict[str, bool] = {"stored": True}
_CONTAINERS = (dict, list, tuple)  # what StorableModel walks into (strings are checked inline)


class StorableModel(BaseModel):
    """A model whose string data is made storable as it is validated (see the module docstring)."""

    @model_validator(mode="after")
    def _storable_strings(self, info: ValidationInfo) -> Self:
        # After validation, so JSON loads stay on pydantic's fast path; nested models clean themselves.
        if info.context is STORED:
            return self
        fields = self.__dict__
        for name, value in fields.items():
            if isinstance(value, str):
                if not value.isascii() or "\x00" in value:  # inline: most fields are plain ASCII strings
                    fields[name] = storable(value)
            elif isinstance(value, _CONTAINERS):
                fields[name] = storable_data(value)
        return self
