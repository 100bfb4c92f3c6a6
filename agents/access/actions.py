"""The access agent's actions: temporary grants approved by the role's owners (four-eyes), listing, revoking."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, field_validator, model_validator

from agents.access.roles import parse_duration, role
from bot.actions import Action, Approval, Grounded

_ROLE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_USER = r"^[^\s]{1,255}$"
# The role decides what is granted and who approves it: a person must have named it (or a tool shown it). The user is
# not grounded: people name colleagues by first name and the model maps them to identities; the role's owners see
# exactly who would get the access before anything is granted (always approved, four-eyes).
ROLE = Grounded(sources=frozenset({"said", "tool_result", "context"}), ask="Which role should {user} get?")


def _owners(action: GrantAccess) -> str | None:
    return role(action.role).group


class GrantAccess(Action):
    """Grant a person a role for a while (e.g. 2h); the role's owners approve; it is revoked when it expires."""

    name: ClassVar[str] = "grant_access"
    owner: ClassVar[str | None] = "access"
    approval: ClassVar[Approval] = Approval.always(four_eyes=True, group_of=_owners)
    user: str = Field(pattern=_USER, description="Who gets the access (email or chat id).")
    role: Annotated[str, ROLE] = Field(pattern=_ROLE, description="The role exactly as the person named it.")
    duration: str = Field(description="How long: 30m, 2h, 1h30m; at most the role's maximum.")

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value.strip().lower()

    @model_validator(mode="after")
    def _within_role(self) -> GrantAccess:
        found = role(self.role)  # ValueError for an unknown role
        if parse_duration(self.duration) > found.longest:
            raise ValueError(f"{self.role} may be granted for at most {found.max}")
        return self

    def describe(self) -> str:
        return f"grant {self.role} to {self.user} for {self.duration}"


class ListGrants(Action):
    """List access grants (active first), optionally of one person. Read-only."""

    name: ClassVar[str] = "list_grants"
    owner: ClassVar[str | None] = "access"
    user: str | None = Field(None, pattern=_USER)


class RevokeAccess(Action):
    """Revoke an access grant now, by its grant id (from list_grants)."""

    name: ClassVar[str] = "revoke_access"
    owner: ClassVar[str | None] = "access"
    grant_id: str = Field(min_length=1, max_length=80)

    def describe(self) -> str:
        return f"revoke grant {self.grant_id}"
