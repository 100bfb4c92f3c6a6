"""RFC 8601 ``Authentication-Results`` header values -> typed results, in one linear pass.

Written for what real receiving servers emit, not only for the RFC's grammar: folded lines; comments, nested,
wherever CFWS may stand and right after a word (``dmarc=pass(p=REJECT)``); a quoted authserv-id and a version
number; a trailing or doubled ``;``; several results per method; ``key=value`` pairs that are not
``ptype.property`` (Microsoft's ``action=none``, Fastmail's ``x-bits=2048``, Amazon SES's ``client-ip=...``);
results that are not keywords for methods nobody reads (SES's ``envelope-from=alice@example.com``); property
values holding ``/``, ``+``, ``=`` or ``@`` (``header.b=Ab/+c1=``, ``header.i="j doe"@example.com``).

Anything else -- an unclosed comment or quoted string, a missing ``=`` or result, text where a ``;`` belongs, an
absurd version number -- raises ``AuthResultsError``, never a guess: callers make security decisions with the
result, so a header that cannot be read must be refused, not half read.

Every character is examined a bounded number of times (searches only move forward, no backtracking patterns), so
a hostile 100 KB header costs milliseconds.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

_WSP = " \t\r\n"
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # RFC 5321 Ldh-str, plus "_" that some servers write
_DIGITS = re.compile(r"[0-9]+")
_ID_WORD = re.compile(r'[^ \t\r\n;()"=\\]+')  # an authserv-id or a result: ends at "=" too
_VALUE_WORD = re.compile(r'[^ \t\r\n;()"\\]+')  # a property value: may hold "=", "/", "+", "@"
_COMMENT_STOP = re.compile(r"[()\\]")
_QUOTED_STOP = re.compile(r'["\\]')
_MAX_DIGITS = 9  # versions are small numbers; int() of 100 KB of digits would be slow and raise ValueError


class AuthResultsError(ValueError):
    """The header value is not a readable Authentication-Results payload (the message says where and why)."""


class Property(BaseModel):
    """One ``ptype.property=value``, e.g. ``header.d=example.com``; ptype and property in lower case."""

    model_config = ConfigDict(frozen=True)

    ptype: str
    name: str
    value: str


class Attribute(BaseModel):
    """A bare ``key=value`` after a result that is not ``reason`` (non-standard, e.g. Microsoft's ``action=none``)."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: str


class MethodResult(BaseModel):
    """One ``method=result`` with what follows it up to the next ``;``; method and result in lower case."""

    model_config = ConfigDict(frozen=True)

    method: str
    method_version: int | None = None
    result: str
    reason: str | None = None
    properties: list[Property] = []
    attributes: list[Attribute] = []

    def values(self, ptype: str, name: str) -> list[str]:
        """Every value of ``ptype.name`` in this result, in order (usually zero or one)."""
        return [p.value for p in self.properties if p.ptype == ptype and p.name == name]


class AuthResults(BaseModel):
    """A parsed header: who wrote it (``authserv_id`` as written) and its results, in order."""

    model_config = ConfigDict(frozen=True)

    authserv_id: str
    version: int = 1
    results: list[MethodResult] = []  # empty for "authserv-id; none"

    def results_for(self, method: str) -> list[MethodResult]:
        """The results of one method (``dkim``, ``dmarc``, ...), in header order."""
        return [r for r in self.results if r.method == method]


class _Cursor:
    """A position in the header value and the few ways of reading forward from it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, what: str) -> AuthResultsError:
        near = self.text[self.pos:self.pos + 20]
        where = f"at offset {self.pos} near {near!r}" if near else "at the end"
        return AuthResultsError(f"{what} {where}")

    def cfws(self) -> None:
        """Skip white space (folding included) and comments."""
        text, end = self.text, len(self.text)
        while self.pos < end:
            char = text[self.pos]
            if char in _WSP:
                self.pos += 1
            elif char == "(":
                self._skip_comment()
            else:
                return

    def _skip_comment(self) -> None:
        start, depth, pos = self.pos, 0, self.pos
        while True:
            stop = _COMMENT_STOP.search(self.text, pos)
            if stop is None or (stop.group() == "\\" and stop.end() >= len(self.text)):
                self.pos = start
                raise self.fail("unclosed comment")
            char, pos = stop.group(), stop.end()
            if char == "\\":
                pos += 1  # a quoted-pair: the next character is plain text, even ( or )
            elif char == "(":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    self.pos = pos
                    return

    def expect(self, char: str, after: str) -> None:
        if self.peek() != char:
            raise self.fail(f"expected {char!r} {after}")
        self.pos += 1

    def keyword(self) -> str | None:
        match = _KEYWORD.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group()

    def word(self, pattern: re.Pattern[str]) -> str | None:
        match = pattern.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group()

    def number(self, what: str) -> int:
        match = _DIGITS.match(self.text, self.pos)
        if match is None or len(match.group()) > _MAX_DIGITS:
            raise self.fail(f"expected a {what} (a small number)")
        self.pos = match.end()
        return int(match.group())

    def quoted(self) -> str:
        """A quoted-string (the cursor is on its opening quote), without quotes and with quoted-pairs undone."""
        start, pos, parts = self.pos, self.pos + 1, []
        while True:
            stop = _QUOTED_STOP.search(self.text, pos)
            if stop is None or (stop.group() == "\\" and stop.end() >= len(self.text)):
                self.pos = start
                raise self.fail("unclosed quoted string")
            parts.append(self.text[pos:stop.start()])
            if stop.group() == '"':
                self.pos = stop.end()
                return "".join(parts)
            parts.append(self.text[stop.end()])
            pos = stop.end() + 1

    def value(self) -> str:
        """A property or reason value: a quoted-string (optionally ``"local part"@domain``) or a bare word."""
        if self.peek() == '"':
            text = self.quoted()
            if self.peek() == "@":
                self.pos += 1
                text += "@" + (self.word(_VALUE_WORD) or "")
            return text
        word = self.word(_VALUE_WORD)
        if word is None:
            raise self.fail("expected a value")
        return word


def _authserv_id(cursor: _Cursor) -> str:
    cursor.cfws()
    name = cursor.quoted().strip() if cursor.peek() == '"' else cursor.word(_ID_WORD)
    if not name:
        raise cursor.fail("expected the authserv-id")
    return name


def claimed_authserv_id(value: str) -> str | None:
    """The authserv-id a header value starts with, read even when the rest is broken; None if even that is not."""
    try:
        return _authserv_id(_Cursor(value))
    except AuthResultsError:
        return None


def _property_value(cursor: _Cursor) -> str:
    cursor.cfws()
    if cursor.peek() in ("", ";"):
        return ""  # e.g. smtp.mailfrom= for the null sender
    return cursor.value()


def _method_result(cursor: _Cursor, method: str) -> MethodResult:
    cursor.cfws()
    method_version = None
    if cursor.peek() == "/":
        cursor.pos += 1
        cursor.cfws()
        method_version = cursor.number(f"version for method {method!r}")
        cursor.cfws()
    cursor.expect("=", f"after method {method!r}")
    cursor.cfws()
    result = cursor.word(_ID_WORD)
    if result is None:
        raise cursor.fail(f"expected a result for method {method!r}")
    reason: str | None = None
    properties: list[Property] = []
    attributes: list[Attribute] = []
    while True:
        cursor.cfws()
        if cursor.peek() in ("", ";"):
            break
        key = cursor.keyword()
        if key is None:
            raise cursor.fail(f"unexpected text in the {method}={result} result")
        cursor.cfws()
        if cursor.peek() == ".":
            cursor.pos += 1
            cursor.cfws()
            name = cursor.keyword()
            if name is None:
                raise cursor.fail(f"expected a property name after {key!r}.")
            cursor.cfws()
            cursor.expect("=", f"after {key}.{name}")
            properties.append(Property(ptype=key.lower(), name=name.lower(), value=_property_value(cursor)))
        elif cursor.peek() == "=":
            cursor.pos += 1
            value = _property_value(cursor)
            if key.lower() == "reason" and reason is None:
                reason = value
            else:
                attributes.append(Attribute(name=key.lower(), value=value))
        else:
            raise cursor.fail(f"expected '.' or '=' after {key!r}")
    return MethodResult(method=method.lower(), method_version=method_version, result=result.lower(),
                        reason=reason, properties=properties, attributes=attributes)


def parse_authentication_results(value: str) -> AuthResults:
    """Parse one header value (without the field name); raises AuthResultsError, and only that, on bad input."""
    cursor = _Cursor(value)
    authserv_id = _authserv_id(cursor)
    cursor.cfws()
    version = cursor.number("header version") if _DIGITS.match(value, cursor.pos) else 1
    results: list[MethodResult] = []
    said_none = False
    while True:
        cursor.cfws()
        if cursor.peek() == "":
            break
        cursor.expect(";", "between results")
        cursor.cfws()
        if cursor.peek() in ("", ";"):
            continue  # a trailing or doubled ";"
        method = cursor.keyword()
        if method is None:
            raise cursor.fail("expected a method name")
        cursor.cfws()
        if method.lower() == "none" and cursor.peek() in ("", ";"):
            said_none = True
            continue
        results.append(_method_result(cursor, method))
    if said_none and results:
        raise AuthResultsError("'none' and method results in the same header")
    if not said_none and not results:
        raise AuthResultsError(f"no results after the authserv-id {authserv_id!r}")
    return AuthResults(authserv_id=authserv_id, version=version, results=results)
