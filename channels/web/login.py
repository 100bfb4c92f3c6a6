"""Logging in and out of the inbox: the printed login URL (loopback) or OPSGATE_API_TOKEN, then who."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bot.config import Settings
from channels.web import render
from channels.web.auth import Auth, Session, valid_identity
from channels.web.guard import clear_session, csrf_rejected, safe_next, session_of, set_session


class Login:
    """GET/POST /login and POST /logout."""

    def __init__(self, settings: Settings, auth: Auth, renderer: render.Renderer) -> None:
        self.settings = settings
        self.auth = auth
        self.renderer = renderer

    def _page(self, request: Request, session: Session, status_code: int = 200, **extra: Any) -> Response:
        context = {
            "title": "Log in", "user": None, "csrf": session.csrf, "open_mode": self.settings.open_mode,
            "enabled": self.auth.enabled, "by_url": self.auth.uses_login_url,
            "identities": self.auth.identities(), "next": safe_next(request.query_params.get("next")),
            "token": "", "error": None, **extra,
        }
        response = self.renderer.html("login.html", status_code, **context)
        set_session(response, request, self.auth, session)
        return response

    def _anonymous(self, request: Request) -> Session:
        """The visitor's session (kept, so its CSRF token stays valid), or a fresh one."""
        return session_of(request, self.auth) or self.auth.new_session(None)

    async def page(self, request: Request) -> Response:
        """The login form; a valid login-URL token with a single identity to pick logs straight in."""
        session = self._anonymous(request)
        token = request.query_params.get("token")
        if token is None:
            return self._page(request, session)
        if not self.auth.check_login_token(token):
            return self._page(request, session, 403, error=(
                "This login link is not valid. The server prints a new one each time it starts; "
                "use the latest one."
            ))
        identities = self.auth.identities()
        if len(identities) == 1:
            return self._logged_in(request, identities[0], safe_next(request.query_params.get("next")))
        return self._page(request, session, token=token)

    async def submit(self, request: Request) -> Response:
        session = self._anonymous(request)
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not self.auth.csrf_ok(session, fields.get("csrf")):
            return csrf_rejected(self.renderer, request)
        token, identity = fields.get("token", ""), fields.get("identity", "").strip()
        target = safe_next(fields.get("next"))
        if not self.auth.enabled:
            return self._page(request, session, 403)
        if not self.auth.check_credential(token):
            what = "login link" if self.auth.uses_login_url else "token (OPSGATE_API_TOKEN)"
            return self._page(request, session, 403, error=f"Wrong {what}.", next=target)
        allowed = self.auth.identities()
        if self.auth.uses_login_url and identity not in allowed:
            return self._page(request, session, 422, token=token, next=target,
                              error=f"Pick one of: {', '.join(allowed)}.")
        if not valid_identity(identity):
            return self._page(request, session, 422, next=target, error=(
                "Enter who you are: a user name, Slack id or email address (no spaces)."
            ))
        return self._logged_in(request, identity, target)

    def _logged_in(self, request: Request, user: str, target: str) -> Response:
        response = render.redirect(target)
        set_session(response, request, self.auth, self.auth.new_session(user))  # a new CSRF token per login
        return response

    async def logout(self, request: Request) -> Response:
        session = session_of(request, self.auth)
        form = await request.form()
        token = form.get("csrf")
        if not self.auth.csrf_ok(session, token if isinstance(token, str) else None):
            return csrf_rejected(self.renderer, request)
        response = render.redirect("/login")
        clear_session(response)
        return response
