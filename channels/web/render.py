"""Rendering: the Jinja2 environment, and HTML/JSON responses with the inbox's security headers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from bot.claims import SUMMARY_LABEL, claims_note, quote_heading
from channels.web.timeline import OUTCOME_LABELS, STATUS_LABELS

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

# No inline script or style anywhere, so the policy can forbid both; framing is refused (click-jacking on
# the Approve button); the login URL's token must not leak through a Referer header.
R = TypeVar("R", bound=Response)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def environment() -> Environment:
    """Autoescaping, strict about undefined names, with filters for times and status labels."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["iso"] = _iso
    env.filters["status_label"] = lambda s: STATUS_LABELS.get(s, s)
    # Who claims what: the one wording bot/claims.py gives every channel.
    env.globals.update(quote_heading=quote_heading, claims_note=claims_note, summary_label=SUMMARY_LABEL)
    env.filters["outcome_label"] = lambda s: OUTCOME_LABELS.get(s, s)
    return env


class Renderer:
    """Renders templates into responses that always carry the security headers."""

    def __init__(self) -> None:
        self.env = environment()

    def html(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return secure(HTMLResponse(self.fragment(template, **context), status_code=status_code))

    def fragment(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)


def secure(response: R) -> R:
    response.headers.update(SECURITY_HEADERS)
    return response


def json(data: dict[str, Any], status_code: int = 200) -> JSONResponse:
    return secure(JSONResponse(data, status_code=status_code))


def redirect(url: str) -> RedirectResponse:
    """303 See Other: after a form post the browser GETs the next page."""
    return secure(RedirectResponse(url, status_code=303))
