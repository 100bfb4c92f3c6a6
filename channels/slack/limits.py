"""Slack's size limits, and the one way opsgate escapes and shortens text to fit them. Pure functions.

Every Block Kit builder and every message text goes through ``escape`` and ``fit``, so no argument, model
output or person's text can make Slack refuse a message (``invalid_blocks``) or turn into a mention or a link.

Limits, as documented (checked 2026-11-30):
- docs.slack.dev/reference/block-kit/blocks: up to 50 blocks in a message, 100 in a modal.
- .../blocks/section-block: text 1-3,000 characters; at most 10 fields of 2,000 characters; block_id 255.
- .../blocks/header-block: plain_text of at most 150 characters.  .../blocks/context-block: at most 10 elements.
- .../blocks/actions-block: at most 25 elements.  .../blocks/input-block: label and hint 2,000 characters.
- .../block-elements/button-element: text 75, value 2,000, action_id 255.
- .../block-elements/plain-text-input-element: action_id 255, max_length 1-3,000, placeholder 150.
- .../composition-objects/option-object: text 75 (we send no menus; kept for the next builder).
- docs.slack.dev/reference/views/modal-views: title, submit and close 24; blocks 100; private_metadata 3,000;
  callback_id 255.
- api.slack.com/changelog/2018-04-truncating-really-long-messages: message ``text`` is truncated past 40,000
  characters, and Slack asks for no more than 4,000 (longer ones may be split into several messages).
- Undocumented: chat.postMessage answers ``msg_blocks_too_long`` when all the text in a message's blocks
  passes about 12,000 characters (slackapi/bolt-js#2509, #2867). We keep every message's blocks under 10,000.

Characters are counted as UTF-16 code units (an emoji outside the BMP counts twice), which is never less than
Slack's count whichever way Slack counts. Shortening never splits a surrogate pair, an entity (``&amp;``) or a
``<…>`` token (a mention, a date, a link), and always ends with a visible "…(truncated)".
"""

from __future__ import annotations

import hashlib
from typing import Any

MESSAGE_BLOCKS = 50
MODAL_BLOCKS = 100
SECTION_TEXT = 3000
SECTION_FIELDS = 10
FIELD_TEXT = 2000
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
BLOCK_ID = 255
ACTION_ID = 255
OPTION_TEXT = 75
INPUT_LABEL = 2000
INPUT_HINT = 2000
INPUT_VALUE = 3000
PLACEHOLDER = 150
MODAL_TITLE = 24
MODAL_BUTTON = 24
PRIVATE_METADATA = 3000
CALLBACK_ID = 255
MESSAGE_TEXT = 40000  # hard: Slack truncates beyond it
TEXT = 4000  # what we send: Slack's recommended maximum for a message's text
BLOCKS_TEXT_TOTAL = 10000  # our margin below the undocumented ~12,000 of text across a message's blocks

TRUNCATED = "…(truncated)"
_SHORT_TRUNCATED = "…"


def escape(text: str) -> str:
    """Slack's three control characters escaped as Slack asks, so text never becomes a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def length(text: str) -> int:
    """Length as Slack may count it at most: UTF-16 code units."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _prefix_within(text: str, units: int) -> int:
    """The largest number of code points of ``text`` whose UTF-16 length is at most ``units``."""
    if text.isascii():
        return min(len(text), units)
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > units:
            return index
    return len(text)


def _safe_cut(text: str, cut: int) -> int:
    """Move ``cut`` back so the prefix ends outside an ``&…;`` entity and outside a ``<…>`` token."""
    head = text[:cut]
    opened = head.rfind("<")
    if opened > head.rfind(">"):
        cut = opened
        head = text[:cut]
    amp = head.rfind("&")
    if amp != -1 and amp > head.rfind(";") and ";" in text[amp:amp + 6]:
        cut = amp
    return cut


def fit(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit``, else its longest safe prefix plus "…(truncated)" (or "…" when tiny)."""
    if length(text) <= limit:
        return text
    suffix = TRUNCATED if limit >= 10 * len(TRUNCATED) else _SHORT_TRUNCATED
    cut = _safe_cut(text, _prefix_within(text, limit - length(suffix)))
    return text[:cut] + suffix


def fit_escaped(text: str, limit: int) -> str:
    """``escape`` then ``fit``: a person's or the model's text, ready for mrkdwn or a message's ``text``."""
    return fit(escape(text), limit)


def stable_id(prefix: str, key: str, limit: int = BLOCK_ID) -> str:
    """``prefix + key`` as a block_id/action_id; a hash of the key instead when that would be too long."""
    plain = f"{prefix}{key}"
    if len(plain) <= limit and plain.isascii():
        return plain
    return f"{prefix}{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"


# --- checks: the limits above applied to a whole message or modal (used by tests and before delivery) -------


def _text_of(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def _check_text(problems: list[str], where: str, obj: Any, limit: int) -> int:
    text = _text_of(obj)
    if not text:
        problems.append(f"{where}: empty text")
    elif length(text) > limit:
        problems.append(f"{where}: {length(text)} characters > {limit}")
    return length(text)


def _check_id(problems: list[str], where: str, value: Any, limit: int) -> None:
    if value is not None and length(str(value)) > limit:
        problems.append(f"{where}: id of {length(str(value))} characters > {limit}")


def _check_element(problems: list[str], where: str, element: dict[str, Any]) -> int:
    _check_id(problems, f"{where}.action_id", element.get("action_id"), ACTION_ID)
    kind = element.get("type")
    if kind == "button":
        _check_id(problems, f"{where}.value", element.get("value"), BUTTON_VALUE)
        return _check_text(problems, f"{where}.text", element.get("text"), BUTTON_TEXT)
    if kind == "plain_text_input":
        _check_id(problems, f"{where}.initial_value", element.get("initial_value"), INPUT_VALUE)
        if "placeholder" in element:
            _check_text(problems, f"{where}.placeholder", element["placeholder"], PLACEHOLDER)
        return length(str(element.get("initial_value", "")))
    if kind in ("mrkdwn", "plain_text"):
        return _check_text(problems, where, element, SECTION_TEXT)
    return 0


def block_problems(blocks: list[dict[str, Any]], max_blocks: int) -> list[str]:
    """Every documented limit these blocks break (empty when Slack will take them)."""
    problems: list[str] = []
    total = 0
    if len(blocks) > max_blocks:
        problems.append(f"{len(blocks)} blocks > {max_blocks}")
    for i, block in enumerate(blocks):
        where, kind = f"blocks[{i}]", block.get("type")
        _check_id(problems, f"{where}.block_id", block.get("block_id"), BLOCK_ID)
        if kind == "header":
            total += _check_text(problems, f"{where}.text", block.get("text"), HEADER_TEXT)
        elif kind == "section":
            if "text" in block:
                total += _check_text(problems, f"{where}.text", block["text"], SECTION_TEXT)
            fields = block.get("fields", [])
            if len(fields) > SECTION_FIELDS:
                problems.append(f"{where}: {len(fields)} fields > {SECTION_FIELDS}")
            for j, field in enumerate(fields):
                total += _check_text(problems, f"{where}.fields[{j}]", field, FIELD_TEXT)
            if "text" not in block and not fields:
                problems.append(f"{where}: a section needs text or fields")
        elif kind == "context":
            elements = block.get("elements", [])
            if not elements or len(elements) > CONTEXT_ELEMENTS:
                problems.append(f"{where}: {len(elements)} context elements (1-{CONTEXT_ELEMENTS})")
            total += sum(_check_element(problems, f"{where}.elements[{j}]", e) for j, e in enumerate(elements))
        elif kind == "actions":
            elements = block.get("elements", [])
            if not elements or len(elements) > ACTIONS_ELEMENTS:
                problems.append(f"{where}: {len(elements)} action elements (1-{ACTIONS_ELEMENTS})")
            total += sum(_check_element(problems, f"{where}.elements[{j}]", e) for j, e in enumerate(elements))
        elif kind == "input":
            total += _check_text(problems, f"{where}.label", block.get("label"), INPUT_LABEL)
            if "hint" in block:
                total += _check_text(problems, f"{where}.hint", block["hint"], INPUT_HINT)
            total += _check_element(problems, f"{where}.element", block.get("element") or {})
        else:
            problems.append(f"{where}: unexpected block type {kind!r}")
    if max_blocks == MESSAGE_BLOCKS and total > BLOCKS_TEXT_TOTAL:
        problems.append(f"{total} characters of text in blocks > {BLOCKS_TEXT_TOTAL}")
    return problems


def message_problems(text: str, blocks: list[dict[str, Any]] | None) -> list[str]:
    """The limits a chat.postMessage / chat.update with this ``text`` and ``blocks`` breaks."""
    problems = [] if 0 < length(text) <= TEXT else [f"text of {length(text)} characters (1-{TEXT})"]
    return problems + block_problems(blocks or [], MESSAGE_BLOCKS)


def modal_problems(view: dict[str, Any]) -> list[str]:
    """The limits a views.open with this modal breaks."""
    problems = block_problems(view.get("blocks", []), MODAL_BLOCKS)
    for name in ("title", "submit", "close"):
        if name in view:
            _check_text(problems, name, view[name], MODAL_TITLE if name == "title" else MODAL_BUTTON)
    _check_id(problems, "private_metadata", view.get("private_metadata"), PRIVATE_METADATA)
    _check_id(problems, "callback_id", view.get("callback_id"), CALLBACK_ID)
    return problems
