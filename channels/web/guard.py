"""Per-request checks of the inbox: who is asking (cookie or bearer), and whether a form post is genuine."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from channels.web import render
from channels.web.auth import COOKIE, SESSION_SECONDS, Auth, Session

FETCH_HEADER = "x-requested-with"


def wants_json(request: Request) -> bool:
    """Requests from the inbox's script ask for JSON; plain form posts get pages and redirects."""
    return request.headers.get(FETCH_HEADER, "").lower() == "fetch"


async def session_of(request: Request, auth: Auth) -> Session | None:
    """The bearer session if a valid token is sent, else the cookie's session (stored or anonymous), else None."""
    return await auth.current(request.cookies.get(COOKIE), request.headers.get("authorization"),
                              request.headers.get("x-opsgate-user"))


def safe_next(target: str | None) -> str:
    """Only local paths, so a crafted login link cannot send the user to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def set_cookie(response: Response, request: Request, value: str) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over HTTPS."""
    response.set_cookie(
        COOKIE, value, max_age=SESSION_SECONDS, path="/", httponly=True, samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")


def unauthenticated(request: Request) -> Response:
    """A page redirects to the login page; a script or a post gets 401."""
    if request.method == "GET" and not wants_json(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return render.redirect(f"/login?next={quote(target, safe='/')}")
    return render.json({"ok": False, "error": "not logged in; open the inbox and log in again"}, 401)


def csrf_rejected(renderer: render.Renderer, request: Request) -> Response:
    """403 for a post without this session's CSRF token (a forged or stale form)."""
    message = "this form has expired or did not come from the inbox (CSRF check failed); reload and try again"
    if wants_json(request):
        return render.json({"ok": False, "error": message}, 403)
    return renderer.html("error.html", status_code=403, title="Forbidden", message=message, user=None,
                         csrf="", open_mode=False)
