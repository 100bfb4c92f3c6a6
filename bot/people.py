"""People, not strings: who is who across Slack, email, the web inbox, the API and the CLI.

A person has a name and any number of identities (Slack user ids, email addresses, names). ``OPSGATE_PEOPLE``
maps them explicitly; any identity that is not mapped is a person of its own. A channel that vouches for more
than the id it signs (Slack reports a user's email address through ``users.info``) hands over an ``Actor``
carrying that email, and the directory resolves the actor to the person owning the address.

Every comparison of who requested and who decides goes through ``same_person``. Pure values, no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict

from bot.errors import ConfigError

PEOPLE_VARIABLE = "OPSGATE_PEOPLE"

SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
EMAIL = re.compile(r"^[^@\s,;=]+@[^@\s,;=]+\.[^@\s,;=]+$")
NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
IDENTITY_HELP = "a Slack user id (U…/W…), an email address or a user name (lowercase letters, digits, . _ -)"


def is_identity(value: str) -> bool:
    """Whether ``value`` is a Slack user id, an email address or a user name."""
    return bool(SLACK_ID.match(value) or EMAIL.match(value) or NAME.match(value))


def key(identity: str) -> str:
    """The comparison key of an identity: identities match case-insensitively (emails especially)."""
    return identity.strip().lower()


def canonical(identity: str) -> str:
    """How an identity is shown and recorded: Slack ids as Slack writes them, anything else in lowercase."""
    value = identity.strip()
    return value if SLACK_ID.match(value) else value.lower()


class Actor(BaseModel):
    """Who acted on a channel: the identity the channel authenticated, plus the email address it vouches for.

    ``email`` is only ever what the channel itself reports (Slack's ``users.info`` profile email), never
    anything the person typed.
    """

    model_config = ConfigDict(frozen=True)
    id: str
    email: str | None = None


def identity_of(actor: Actor | str | None) -> str | None:
    """The channel identity of an actor: what events record as ``user`` / ``by``."""
    return actor.id if isinstance(actor, Actor) else actor


class Person(BaseModel):
    """One human: a canonical name and every identity known to be theirs (comparison keys, name first)."""

    model_config = ConfigDict(frozen=True)
    name: str
    identities: tuple[str, ...]
    mapped: bool = False  # listed in OPSGATE_PEOPLE (rather than an identity standing for itself)

    @classmethod
    def alone(cls, identity: str) -> Person:
        """An identity nobody mapped: a person of its own, named by it."""
        return _alone(identity)

    def has(self, identity: str) -> bool:
        """Whether ``identity`` is one of this person's (case-insensitively)."""
        return key(identity) in self.identities

    def seen_as(self, identity: str) -> Person:
        """This person, also known by ``identity`` (a channel id resolved through a vouched-for email)."""
        k = key(identity)
        return self if k in self.identities else self.model_copy(update={"identities": (*self.identities, k)})

    @property
    def emails(self) -> list[str]:
        """The person's email addresses, in the order they were configured."""
        return [i for i in self.identities if EMAIL.match(i)]

    def label(self, identity: str | None = None) -> str:
        """``alice (U012AB)`` when acting under another identity than the name, else ``alice``."""
        if identity is None or key(identity) == key(self.name):
            return self.name
        return f"{self.name} ({identity})"


def acted(identity: str | None, person: str | None) -> str:
    """Who acted, for people to read: ``alice (U012AB)`` when the person differs from the channel identity."""
    if not identity:
        return person or "someone"
    if not person or key(person) == key(identity):
        return identity
    return f"{person} ({identity})"


def same_person(a: Person, b: Person) -> bool:
    """Whether two resolved people are the same human: an identity in common (a person's name is one)."""
    return not set(a.identities).isdisjoint(b.identities)


def parse_people(raw: str | None, variable: str = PEOPLE_VARIABLE) -> list[Person]:
    """Read ``alice=U012AB,alice@example.com; bob=bob@example.com`` into people; ConfigError names ``variable``."""
    people: list[Person] = []
    for entry in (part.strip() for part in (raw or "").split(";")):
        if not entry:
            continue
        name, sep, rest = entry.partition("=")
        name = name.strip()
        if not sep:
            raise ConfigError(f"{variable}: {entry!r} must look like name=identity,identity")
        if not NAME.match(name):
            raise ConfigError(f"{variable}: person name {name!r} must be a user name "
                              "(lowercase letters, digits, . _ -, starting with a letter)")
        identities = [i.strip() for i in rest.split(",") if i.strip()]
        if not identities:
            raise ConfigError(f"{variable}: {name} lists no identities after '='")
        bad = [i for i in identities if not is_identity(i)]
        if bad:
            raise ConfigError(f"{variable}: {', '.join(bad)} (for {name}) is not {IDENTITY_HELP}")
        keys = tuple(dict.fromkeys([name, *(key(i) for i in identities)]))
        people.append(Person(name=name, identities=keys, mapped=True))
    return people


@functools.lru_cache(maxsize=4096)
def _alone(identity: str) -> Person:
    # Frozen, so one instance per identity can serve every caller: a decision resolves the same few identities
    # (the approver, the requester) several times, ~1.6 µs each to build.
    return Person(name=canonical(identity), identities=(key(identity),))


class People:
    """The directory: explicit mappings, and resolution of any identity or actor to a person."""

    def __init__(self, people: Sequence[Person] = (), variable: str = PEOPLE_VARIABLE) -> None:
        self._owner: dict[str, Person] = {}
        for person in people:
            for identity in person.identities:
                other = self._owner.get(identity)
                if other is not None and other.name != person.name:
                    raise ConfigError(f"{variable}: {identity} is listed for both {other.name} and {person.name}; "
                                      "an identity belongs to one person")
                if other is not None:
                    raise ConfigError(f"{variable}: {person.name} is listed twice")
                self._owner[identity] = person
        self.people: tuple[Person, ...] = tuple(people)

    @classmethod
    def parse(cls, raw: str | None, variable: str = PEOPLE_VARIABLE) -> People:
        """The directory described by an ``OPSGATE_PEOPLE`` value; ConfigError names ``variable``."""
        return cls(parse_people(raw, variable), variable)

    def resolve(self, identity: str) -> Person:
        """The person owning ``identity``: the mapped one, else a person of its own."""
        return self._owner.get(key(identity)) or Person.alone(identity)

    def person_of(self, actor: Actor | str) -> Person:
        """The person behind a channel identity, using the email the channel vouches for when nothing maps the id.

        An explicit mapping of the channel id wins. Otherwise a vouched-for email makes the actor the person
        owning that email (mapped, or the email standing for itself), also known by the channel id. Without
        either, the channel id is a person of its own.
        """
        if isinstance(actor, str):
            return self.resolve(actor)
        mapped = self._owner.get(key(actor.id))
        if mapped is not None:
            return mapped
        if actor.email:
            return self.resolve(actor.email).seen_as(actor.id)
        return Person.alone(actor.id)

    def members(self, identities: Iterable[str]) -> list[Person]:
        """The people an approver list names (by name or any identity), each once, in list order."""
        found: dict[str, Person] = {}
        for identity in identities:
            person = self.resolve(identity)
            found.setdefault(person.name, person)
        return list(found.values())

    def is_among(self, person: Person, identities: Iterable[str]) -> bool:
        """Whether ``person`` is one of the people an approver list names."""
        return any(same_person(person, member) for member in self.members(identities))
