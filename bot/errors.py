"""Errors of opsgate, in three families.

- Signals: expected turns of the flow that callers handle (a thread is not waiting for that, a decision came
  too late, a person may not approve). Channels turn them into a clear answer to the person.
- Configuration mistakes: found at start-up, naming the variable and what is wrong with it.
- Runtime failures: something outside us is down (model server, channel, webhook); retried, never lost.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def new_error_id() -> str:
    """A short id that ties what a person is told to the log line with the details (``error_id``)."""
    return secrets.token_hex(6)


def first_problem(exc: ValidationError) -> str:
    """Where and what the first problem of a validation error is (``choices.0.message: Field required``);
    ``body`` as the place when it is the whole input."""
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "body"
    return f"{where}: {err['msg']}"


class OpsgateError(Exception):
    """Base of every opsgate error."""


# --- signals -----------------------------------------------------------------------------------------------


class Signal(OpsgateError):
    """An expected outcome that the caller reports back to the person who caused it."""

    http_status = 400  # how HTTP front ends (API, web inbox) answer it


class ThreadNotFound(Signal):
    http_status = 404

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"thread {thread_id} not found")
        self.thread_id = thread_id


class NotWaiting(Signal):
    """The thread is not waiting for this kind of response (or this approval id)."""

    http_status = 409


class AlreadyDecided(Signal):
    http_status = 409

    def __init__(self, by: str, approved: bool, closed_by: str = "decision") -> None:
        if closed_by == "expiry":
            text = "already closed: the request expired before anyone decided"
        elif closed_by == "withdrawal":
            text = f"already closed: withdrawn by the requester ({by})"
        else:
            text = f"already decided: {'approved' if approved else 'rejected'} by {by}"
        super().__init__(text)
        self.by = by
        self.approved = approved
        self.closed_by = closed_by


class NotAuthorized(Signal):
    """The person may not make this decision; ``kind`` says why (see bot/authorization.py ``RefusalKind``)."""

    http_status = 403

    def __init__(self, message: str, kind: str = "not_an_approver") -> None:
        super().__init__(message)
        self.kind = kind


class InvalidArguments(Signal):
    """Edited or command arguments do not fit the action's schema; ``fields`` holds each bad field's problem."""

    http_status = 422

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = dict(fields or {})


class CommandSyntaxError(Signal):
    """An explicit ``!command`` cannot be read (unbalanced quote, a word without ``=``, a repeated key)."""

    http_status = 422


class UnknownAgent(Signal):
    http_status = 422

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown agent {name!r}; known agents: {', '.join(known) or 'none'}")
        self.name = name


class TooLarge(Signal):
    """A message or request body over the configured size; refused whole, nothing is stored."""

    http_status = 413


class Conflict(Signal):
    """Another writer appended to the thread first; reload and try again."""

    http_status = 409


# --- configuration -----------------------------------------------------------------------------------------


class ConfigError(OpsgateError):
    """A setting is missing or wrong; the message names the variable."""


# --- runtime failures --------------------------------------------------------------------------------------


class RuntimeFailure(OpsgateError):
    """Something outside opsgate failed; the work is retried later."""


class ModelUnavailable(RuntimeFailure):
    """The model server could not be reached or kept answering 429/5xx."""


class ModelRefused(RuntimeFailure):
    """The model server answered 4xx (bad key, unknown model, request too large): recorded on the thread."""


class DeliveryRetry(RuntimeFailure):
    """A channel could not deliver now (4xx mail reply, 429, connection error); try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryFailed(RuntimeFailure):
    """A channel refused the message for good (5xx mail reply, invalid channel); recorded on the thread."""


class ExecutionFailed(RuntimeFailure):
    """An action's tool failed; the failure is recorded as the action's result."""


class ApprovalExpired(AlreadyDecided):
    """The approval's time ran out before this decision: the request was closed as expired (fail closed)."""

    def __init__(self, message: str) -> None:
        Signal.__init__(self, message)
        self.by, self.approved, self.closed_by = "opsgate", False, "expiry"


class NotRequester(Signal):
    """Only the person who asked may withdraw a request or stop a thread."""

    http_status = 403


class TimerGone(Signal):
    """The timer being fired is no longer pending: another worker fired it, or it was cancelled."""

    http_status = 409


class DuplicateRef(Signal):
    """A channel reference (Slack event id, email Message-ID, ...) was already recorded: a retried delivery."""
