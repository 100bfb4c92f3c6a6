"""The one answer to "may this person decide this approval, and if not, why" for every channel.

``may_decide`` is a pure function of the actor, the pending approval, the channel and the settings. It compares
people (bot/people.py), never identity strings: the person who asked from Slack is the same person when they
answer by email, in the web inbox, by API or in the CLI. ``bot.approvals.decide`` enforces its answer; the web
inbox, Slack and the approval mail recipients only render or follow it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.config import Settings
from bot.errors import NotAuthorized
from bot.people import Actor, Person, same_person
from bot.policy import approvers_for
from bot.thread import PendingApproval

# Channels where a person is authenticated locally (token or login URL): in open mode they may approve.
LOCAL_CHANNELS = frozenset({"web", "cli", "api"})

RefusalKind = Literal["not_identified", "open_mode_channel", "not_an_approver", "four_eyes"]


@dataclass(frozen=True)
class Allowed:
    """The person may make this decision."""

    person: Person


@dataclass(frozen=True)
class Refusal:
    """The decision does not count: ``kind`` for code, ``reason`` for the person."""

    kind: RefusalKind
    reason: str
    person: Person | None = None

    def error(self) -> NotAuthorized:
        """The signal ``service.decide`` raises for this refusal."""
        return NotAuthorized(self.reason, self.kind)


Authorization = Allowed | Refusal


def requesters(pending: PendingApproval, settings: Settings) -> list[Person]:
    """Who asked: the person fixed at request time, and whoever the requester's identity resolves to today."""
    people = settings.people
    found = [people.resolve(pending.requester_person)] if pending.requester_person else []
    if pending.requester:
        found.append(people.resolve(pending.requester))
    return found


def deciders(pending: PendingApproval, settings: Settings) -> list[str]:
    """Who may decide: the action group's approvers, and since an escalation the escalation group's too."""
    found = list(approvers_for(pending.group, settings))
    if pending.escalated_to:
        found += [m for m in settings.approver_groups.get(pending.escalated_to, []) if m not in found]
    return found


def _approver_label(pending: PendingApproval, settings: Settings) -> str:
    grouped = pending.group and settings.approver_groups.get(pending.group)
    label = f"group {pending.group}" if grouped else "approvers"
    return f"{label} or the escalation group {pending.escalated_to}" if pending.escalated_to else label


def may_decide(
    actor: Actor | str | None, pending: PendingApproval, channel: str, settings: Settings, *, approving: bool
) -> Authorization:
    """Whether ``actor`` may approve (or reject) ``pending`` from ``channel``, as people, with the reason if not.

    Open mode (no approvers configured) accepts only locally authenticated channels. Otherwise the person must
    be one of the approvers for the action's group, and under four-eyes may not approve what they requested;
    rejecting (cancelling) one's own request stays allowed.
    """
    if actor is None or (isinstance(actor, str) and not actor.strip()):
        return Refusal("not_identified", "a decision needs an identified user")
    people = settings.people
    person = people.person_of(actor)
    label = person.label(actor if isinstance(actor, str) else actor.id)
    if settings.open_mode:
        if channel in LOCAL_CHANNELS:
            return Allowed(person)
        return Refusal(
            "open_mode_channel",
            "no approvers are configured (OPSGATE_APPROVERS); decisions are only accepted from the local web "
            "inbox, the CLI or the API until they are",
            person,
        )
    if not people.is_among(person, deciders(pending, settings)):
        return Refusal(
            "not_an_approver",
            f"{label} is not one of the {_approver_label(pending, settings)} for {pending.action}",
            person,
        )
    if approving and pending.four_eyes and any(same_person(person, r) for r in requesters(pending, settings)):
        return Refusal(
            "four_eyes", f"four-eyes rule: {label} requested this {pending.action} and may not approve it", person
        )
    return Allowed(person)


def email_approvers(pending: PendingApproval, settings: Settings) -> list[str]:
    """Where approval mails go: the first email address of each person who may approve by email."""
    addresses: list[str] = []
    for person in settings.people.members(deciders(pending, settings)):
        if not person.emails:
            continue  # known only by Slack id or name: asked in Slack or the inbox, not by mail
        address = person.emails[0]
        if isinstance(may_decide(address, pending, "email", settings, approving=True), Allowed):
            addresses.append(address)
    return addresses
