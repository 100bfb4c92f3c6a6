"""Logging in and out of the inbox: personal token, sign-in link, the first-run login URL, or a trusted relay."""

from __future__ import annotations

from typing import Any

import structlog
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from bot.config import Settings
from bot.credentials import LoginMethod
from bot.principals import BadCredential, personal_caller
from bot.signin import LINK_TTL, SignInLinks
from channels.web import render
from channels.web.auth import OPEN_MODE_USER, Auth, Session, valid_identity
from channels.web.guard import clear_session, csrf_rejected, safe_next, session_of, set_cookie

log = structlog.get_logger("opsgate.web")

SHARED_TOKEN_REFUSED = (
    "OPSGATE_API_TOKEN does not prove who you are, so it does not open the inbox. Log in with your personal "
    "token (an operator creates it: opsgate tokens create --user YOU) or ask for a sign-in link."
)
BAD_LINK = (
    "This sign-in link is not valid: it was already used, it expired (links work for "
    f"{int(LINK_TTL.total_seconds() // 60)} minutes), or it never existed. Ask for a new one below."
)


class Login:
    """GET/POST /login, the sign-in link routes, and POST /logout."""

    def __init__(self, settings: Settings, auth: Auth, renderer: render.Renderer, links: SignInLinks) -> None:
        self.settings = settings
        self.auth = auth
        self.renderer = renderer
        self.links = links

    async def _anonymous(self, request: Request) -> tuple[Session, str | None]:
        """The visitor's session (kept, so its CSRF token stays valid) or a fresh pre-login one with its cookie."""
        session = await session_of(request, self.auth)
        if session is not None and not session.bearer:
            return session, None
        cookie, fresh = self.auth.anonymous()
        return fresh, cookie

    async def _page(self, request: Request, status_code: int = 200, **extra: Any) -> Response:
        session, cookie = await self._anonymous(request)
        context = {
            "title": "Log in", "user": None, "csrf": session.csrf, "open_mode": self.settings.open_mode,
            "by_url": self.auth.uses_login_url, "relay": self.auth.relay, "links": self.links.available,
            "next": safe_next(request.query_params.get("next")), "error": None, "notice": None, "identity": "",
            **extra,
        }
        response = self.renderer.html("login.html", status_code, **context)
        if cookie is not None:
            set_cookie(response, request, cookie)
        return response

    async def page(self, request: Request) -> Response:
        """The login page; the first-run login URL (``?token=``) signs straight in as ``local``."""
        token = request.query_params.get("token")
        if token is None:
            return await self._page(request)
        if not self.auth.check_login_token(token):
            return await self._page(request, 403, error=(
                "This login link is not valid. The server prints a new one each time it starts; "
                "use the latest one."
            ))
        return await self._logged_in(request, OPEN_MODE_USER, "url", safe_next(request.query_params.get("next")))

    async def _form(self, request: Request) -> tuple[Session, dict[str, str]] | Response:
        """A posted login form whose CSRF token matches the visitor's session."""
        session, _ = await self._anonymous(request)
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not self.auth.csrf_ok(session, fields.get("csrf")):
            return csrf_rejected(self.renderer, request)
        return session, fields

    async def submit(self, request: Request) -> Response:
        """A personal token; the login-URL token; or, for a trusted relay, OPSGATE_API_TOKEN and an identity."""
        posted = await self._form(request)
        if isinstance(posted, Response):
            return posted
        _, fields = posted
        token, identity = fields.get("token", "").strip(), fields.get("identity", "").strip()
        target = safe_next(fields.get("next"))
        if token.startswith("ogp_") and self.auth.store is not None:
            try:
                caller = await personal_caller(token, self.auth.store)
            except BadCredential as exc:
                log.info("web_login_refused", reason=str(exc), audit=True)
                return await self._page(request, 403, error=f"Not logged in: {exc}.", next=target)
            return await self._logged_in(request, caller.person, "token", target, token_id=caller.token_id,
                                         until=caller.expires_at)
        if self.auth.check_login_token(token):
            return await self._logged_in(request, OPEN_MODE_USER, "url", target)
        if self.auth.check_api_token(token):
            if not self.auth.relay:
                log.info("web_login_refused", reason="shared token without OPSGATE_API_TRUSTED_RELAY", audit=True)
                return await self._page(request, 403, error=SHARED_TOKEN_REFUSED, next=target)
            if not valid_identity(identity):
                return await self._page(request, 422, next=target, error=(
                    "Enter who you are: a user name, Slack id or email address (no spaces)."
                ))
            return await self._logged_in(request, identity, "relay", target)
        log.info("web_login_refused", reason="wrong token", audit=True)
        return await self._page(request, 403, error="Wrong token.", next=target)

    async def request_link(self, request: Request) -> Response:
        """Send a sign-in link to a known identity; the answer is the same whoever asks."""
        posted = await self._form(request)
        if isinstance(posted, Response):
            return posted
        _, fields = posted
        identity = fields.get("identity", "").strip()
        if not valid_identity(identity):
            return await self._page(request, 422, identity=identity[:100], error=(
                "Enter your email address or Slack member id (no spaces)."
            ))
        if not self.links.available:
            return await self._page(request, 409, error=(
                "This server cannot send sign-in links (neither SMTP nor Slack is configured). "
                "Log in with a personal token."
            ))
        minutes = int(LINK_TTL.total_seconds() // 60)
        response = await self._page(request, identity=identity, notice=(
            f"If {identity} may use this inbox, a sign-in link is on its way to it by email or Slack DM. "
            f"It works once, for {minutes} minutes."
        ))
        # After the answer is sent, so its timing does not tell known identities (which cost writes) from others.
        response.background = BackgroundTask(self.links.request, identity)
        return response

    async def link_page(self, request: Request) -> Response:
        """The landing page of a sign-in link: a button, so mail scanners that open links do not use it up."""
        session, cookie = await self._anonymous(request)
        token = request.query_params.get("token", "")
        response = self.renderer.html("link.html", 200 if token else 403, title="Sign in", user=None,
                                      csrf=session.csrf, open_mode=False, token=token,
                                      error=None if token else BAD_LINK)
        if cookie is not None:
            set_cookie(response, request, cookie)
        return response

    async def use_link(self, request: Request) -> Response:
        """Use a sign-in link (once) and log in as its identity."""
        posted = await self._form(request)
        if isinstance(posted, Response):
            return posted
        _, fields = posted
        identity = await self.links.redeem(fields.get("token", ""))
        if identity is None:
            return await self._page(request, 403, error=BAD_LINK)
        return await self._logged_in(request, identity, "link", "/")

    async def _logged_in(self, request: Request, user: str, method: LoginMethod, target: str,
                         **session: Any) -> Response:
        previous = await session_of(request, self.auth)
        await self.auth.close(previous)  # a login replaces whatever session this browser had
        cookie, _ = await self.auth.open(user, method, **session)
        log.info("web_login", user=user, method=method, audit=True)
        response = render.redirect(target)
        set_cookie(response, request, cookie)
        return response

    async def logout(self, request: Request) -> Response:
        """End the session server-side and drop the cookie."""
        session = await session_of(request, self.auth)
        form = await request.form()
        token = form.get("csrf")
        if not self.auth.csrf_ok(session, token if isinstance(token, str) else None):
            return csrf_rejected(self.renderer, request)
        await self.auth.close(session)
        if session is not None and session.user is not None:
            log.info("web_logout", user=session.user, audit=True)
        response = render.redirect("/login")
        clear_session(response)
        return response
