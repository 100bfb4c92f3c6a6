"""The inbox pages: thread list, thread timeline, new request; and the posts that act through the Service.

Every change goes through ``service.start_thread`` / ``add_message`` / ``decide`` with ``Via(channel="web")``,
so the inbox obeys the same authorization and first-decision-wins rules as Slack and email.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from bot.authorization import Allowed, Refusal, may_decide
from bot.commands import usage
from bot.config import Settings
from bot.errors import (
    AlreadyDecided,
    InvalidArguments,
    NotAuthorized,
    NotWaiting,
    Signal,
    ThreadNotFound,
)
from bot.events import Via
from bot.thread import STATUSES, Thread
from channels.web import render
from channels.web.auth import Auth, Session
from channels.web.forms import edit_fields, submitted_arguments, with_errors
from channels.web.guard import csrf_rejected, session_of, unauthenticated, wants_json
from channels.web.timeline import timeline

if TYPE_CHECKING:
    from bot.service import Service

VIA = Via(channel="web")
PAGE_SIZE = 50
QUARANTINE_PAGE_SIZE = 200
TIMELINE_ITEMS = 300
# Order of the list: what needs a person first.
_URGENCY = {"waiting_for_approval": 0, "waiting_for_human": 1, "running": 2, "failed": 3, "done": 4}


class UserError(Signal):
    """A form the person must correct (empty reason, empty request)."""

    http_status = 422


def error_text(error: Signal) -> str:
    """The refusal as a sentence for the page."""
    if isinstance(error, AlreadyDecided) and error.closed_by != "decision":
        return f"Too late: {error}."
    if isinstance(error, AlreadyDecided):
        verb = "approved" if error.approved else "rejected"
        return f"Too late: this was already {verb} by {error.by}. The first decision wins."
    if isinstance(error, NotAuthorized):
        return f"Not allowed: {error}"
    if isinstance(error, InvalidArguments):
        return f"These arguments are not valid: {error}"
    if isinstance(error, NotWaiting):
        return f"Nothing to decide here any more: {error}"
    text = str(error)
    return text[:1].upper() + text[1:]


class Pages:
    """Request handlers of the inbox; ``routes`` in channel.py maps paths to them."""

    def __init__(self, settings: Settings, service: Service, auth: Auth, renderer: render.Renderer) -> None:
        self.settings = settings
        self.service = service
        self.auth = auth
        self.renderer = renderer

    # --- shared -------------------------------------------------------------------------------------------

    def _base(self, session: Session, **extra: Any) -> dict[str, Any]:
        return {"user": session.user, "csrf": session.csrf, "open_mode": self.settings.open_mode, **extra}

    async def _user(self, request: Request) -> Session | Response:
        session = await session_of(request, self.auth)
        if session is None or session.user is None:
            return unauthenticated(request)
        return session

    async def _post(self, request: Request) -> tuple[Session, dict[str, str]] | Response:
        """An authenticated form post whose CSRF token matches, with its fields as strings."""
        session = await self._user(request)
        if isinstance(session, Response):
            return session
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        token = fields.get("csrf") or request.headers.get("x-csrf-token")
        if not self.auth.csrf_ok(session, token):
            return csrf_rejected(self.renderer, request)
        return session, fields

    # --- thread list --------------------------------------------------------------------------------------

    async def _list_context(self, request: Request) -> dict[str, Any]:
        status = request.query_params.get("status") or None
        if status not in STATUSES:
            status = None
        try:
            page = max(0, int(request.query_params.get("page", "0")))
        except ValueError:
            page = 0
        pinned = []
        if status is None and page == 0:
            pinned = await self.service.list_threads("waiting_for_approval", limit=PAGE_SIZE)
        rows = await self.service.list_threads(status, limit=PAGE_SIZE + 1, offset=page * PAGE_SIZE)
        more = len(rows) > PAGE_SIZE
        pinned_ids = {t.id for t in pinned}
        rows = sorted(
            (t for t in rows[:PAGE_SIZE] if t.id not in pinned_ids),
            key=lambda t: (_URGENCY.get(t.status, 9), -t.updated_at.timestamp()),
        )
        counts = await self.service.store.count_threads()
        quarantined = bool(await self.service.quarantined(limit=1))
        version = hashlib.sha1(
            "|".join(f"{t.id}:{t.status}:{t.updated_at.isoformat()}" for t in [*pinned, *rows]).encode()
        ).hexdigest()[:16]
        return {"status": status, "pinned": pinned, "rows": rows, "counts": counts, "statuses": STATUSES,
                "page": page, "more": more, "version": version, "quarantined": quarantined}

    async def list_page(self, request: Request) -> Response:
        session = await self._user(request)
        if isinstance(session, Response):
            return session
        context = await self._list_context(request)
        return self.renderer.html("list.html", **self._base(session, title="Inbox", **context))

    async def list_events(self, request: Request) -> Response:
        """JSON poll of the list: the list's HTML when its version differs from ``v``."""
        session = await self._user(request)
        if isinstance(session, Response):
            return session
        context = await self._list_context(request)
        if request.query_params.get("v") == context["version"]:
            return render.json({"version": context["version"], "changed": False})
        html = self.renderer.fragment("_list.html", **self._base(session, **context))
        return render.json({"version": context["version"], "changed": True, "html": html})

    async def quarantine_page(self, request: Request) -> Response:
        """Messages set aside (poison): what, why, when; nothing here is retried."""
        session = await self._user(request)
        if isinstance(session, Response):
            return session
        items = await self.service.quarantined(limit=QUARANTINE_PAGE_SIZE)
        return self.renderer.html("quarantine.html", **self._base(session, title="Quarantine", items=items,
                                                                  limit=QUARANTINE_PAGE_SIZE))

    # --- one thread ---------------------------------------------------------------------------------------

    def _thread_context(self, thread: Thread, session: Session) -> dict[str, Any]:
        pending = thread.pending
        fields, hint, may = [], None, {"approve": False, "reject": False}
        if pending is not None:
            agent = self.service.registry.get(thread.agent or self.service.registry.default)
            action = agent.action(pending.action)
            if action is not None:
                fields = edit_fields(action, pending.arguments)
            # Only to shape the buttons: decide() asks the same function again, and that answer is the one that counts.
            for verb in may:
                answer = may_decide(session.user, pending, VIA.channel, self.settings, approving=verb == "approve")
                may[verb] = isinstance(answer, Allowed)
                if isinstance(answer, Refusal):
                    hint = hint or answer.reason
        items = timeline(thread)
        # A page (and every live poll of it) renders at most the newest TIMELINE_ITEMS: a huge thread stays cheap.
        hidden = max(0, len(items) - TIMELINE_ITEMS)
        may_cancel = thread.status not in ("done", "failed") and self.service.may_cancel(thread, session.user, VIA)
        return {"thread": thread, "status": thread.status, "items": items[hidden:], "hidden": hidden,
                "pending": pending, "fields": fields, "hint": hint, "may": may, "seq": thread.seq, "edit_open": False,
                "may_cancel": may_cancel}

    async def _thread_response(self, session: Session, thread_id: str, error: Signal | None = None,
                               form: dict[str, str] | None = None) -> Response:
        try:
            thread = await self.service.get_thread(thread_id)
        except ThreadNotFound as exc:
            return self.renderer.html("error.html", 404, **self._base(session, title="Not found",
                                                                      message=error_text(exc)))
        context = self._thread_context(thread, session)
        code = error.http_status if error else 200
        message = error_text(error) if error else None
        if isinstance(error, InvalidArguments) and error.fields and form and form.get("decision") == "edit":
            # Without the script: the Edit form comes back open, with what was typed and each problem beside it.
            context["fields"] = with_errors(context["fields"], form, error.fields)
            context["edit_open"] = True
        return self.renderer.html("thread.html", code, **self._base(session, title=thread.title or "Thread",
                                                                   error=message, **context))

    async def thread_page(self, request: Request) -> Response:
        session = await self._user(request)
        if isinstance(session, Response):
            return session
        return await self._thread_response(session, request.path_params["thread_id"])

    async def thread_events(self, request: Request) -> Response:
        """JSON poll of one thread: its timeline and approval panel when it has more events than ``seq``."""
        session = await self._user(request)
        if isinstance(session, Response):
            return session
        try:
            thread = await self.service.get_thread(request.path_params["thread_id"])
        except ThreadNotFound as exc:
            return render.json({"error": str(exc)}, 404)
        seen = request.query_params.get("seq")
        changed = seen != str(thread.seq)
        data: dict[str, Any] = {"seq": thread.seq, "status": thread.status, "changed": changed}
        if data["changed"]:
            data["html"] = self.renderer.fragment("_live.html", **self._base(
                session, **self._thread_context(thread, session)))
        return render.json(data)

    def _done(self, request: Request, target: str, error: Signal | None = None) -> Response | None:
        """The answer to a script's post (JSON), or None so the caller answers the plain form."""
        if not wants_json(request):
            return None
        if error is not None:
            answer: dict[str, Any] = {"ok": False, "error": error_text(error)}
            if isinstance(error, InvalidArguments) and error.fields:
                answer["fields"] = error.fields  # each problem beside its input (inbox.js)
            return render.json(answer, error.http_status)
        return render.json({"ok": True, "redirect": target})

    async def _refused(self, request: Request, session: Session, thread_id: str, error: Signal,
                       form: dict[str, str] | None = None) -> Response:
        """A refused post: JSON for the script, else the thread page with the reason and a 4xx status."""
        answer = self._done(request, f"/t/{thread_id}", error)
        return answer or await self._thread_response(session, thread_id, error, form)

    async def _thread_post(
        self, request: Request, act: Callable[[str, Session, dict[str, str]], Awaitable[None]]
    ) -> Response:
        """A form post on a thread: CSRF-checked, acted on, answered with the thread or the refusal."""
        posted = await self._post(request)
        if isinstance(posted, Response):
            return posted
        session, form = posted
        thread_id = request.path_params["thread_id"]
        target = f"/t/{thread_id}"
        try:
            await act(thread_id, session, form)
        except Signal as exc:
            return await self._refused(request, session, thread_id, exc, form)
        return self._done(request, target) or render.redirect(target)

    async def decide(self, request: Request) -> Response:
        """Approve, reject (reason required) or approve with edited arguments."""
        return await self._thread_post(request, self._decide)

    async def _decide(self, thread_id: str, session: Session, form: dict[str, str]) -> None:
        decision = form.get("decision", "")
        approval_id = form.get("approval_id", "")
        comment = form.get("comment", "").strip() or None
        arguments = None
        if decision == "reject" and comment is None:
            raise UserError("a reason is required to reject")
        if decision == "edit":
            thread = await self.service.get_thread(thread_id)
            pending = thread.pending
            agent = self.service.registry.get(thread.agent or self.service.registry.default)
            action = agent.action(pending.action) if pending else None
            if pending is None or pending.approval_id != approval_id or action is None:
                raise NotWaiting("this approval is no longer pending")
            arguments = submitted_arguments(action, form)
        elif decision not in ("approve", "reject"):
            raise UserError("choose approve, reject or edit")
        await self.service.decide(
            thread_id, approval_id, approved=decision != "reject", user=session.user, via=VIA,
            comment=comment, arguments=arguments,
        )

    async def cancel(self, request: Request) -> Response:
        """The requester withdraws the pending request or stops the thread."""
        return await self._thread_post(request, self._cancel)

    async def _cancel(self, thread_id: str, session: Session, form: dict[str, str]) -> None:
        await self.service.cancel(thread_id, user=session.user, via=VIA, reason=form.get("reason", "").strip() or None)

    async def message(self, request: Request) -> Response:
        """Say something in an existing thread (an answer, a follow-up, a command)."""
        return await self._thread_post(request, self._message)

    async def _message(self, thread_id: str, session: Session, form: dict[str, str]) -> None:
        await self.service.add_message(thread_id, _text(form), user=session.user, via=VIA)

    # --- new request --------------------------------------------------------------------------------------

    def _new_context(self, session: Session, **extra: Any) -> dict[str, Any]:
        registry = self.service.registry
        agents = list(registry)
        examples = [(a.name, [(usage(x), x.description()) for x in a.tools]) for a in agents]
        return self._base(session, title="New request", agents=agents, examples=examples,
                          model_configured=self.settings.model_configured, **extra)

    async def new_page(self, request: Request) -> Response:
        session = await self._user(request)
        if isinstance(session, Response):
            return session
        return self.renderer.html("new.html", **self._new_context(session, text="", chosen=None, error=None))

    async def new_submit(self, request: Request) -> Response:
        posted = await self._post(request)
        if isinstance(posted, Response):
            return posted
        session, form = posted
        agent = form.get("agent") or None
        try:
            text = _text(form)
            thread = await self.service.start_thread(text, user=session.user, via=VIA, agent=agent)
        except Signal as exc:
            if wants_json(request):
                return render.json({"ok": False, "error": error_text(exc)}, exc.http_status)
            return self.renderer.html("new.html", exc.http_status, **self._new_context(
                session, text=form.get("text", ""), chosen=agent, error=error_text(exc)))
        return self._done(request, f"/t/{thread.id}") or render.redirect(f"/t/{thread.id}")


def _text(form: dict[str, str]) -> str:
    text = form.get("text", "").strip()
    if not text:
        raise UserError("write a request or a command first, e.g. !help")
    return text
