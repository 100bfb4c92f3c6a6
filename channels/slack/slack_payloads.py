"""What Slack sends us, as typed models: Events API envelope, message events, interactivity, slash commands.

Parsed at the edge (bolt hands us dicts); nothing past this module sees a Slack dict. Slack adds fields over
time, so every model ignores unknown keys; the ones we rely on are required.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Message subtypes that carry a person's words; every other one (edits, joins, bot posts) is ignored.
_HUMAN_SUBTYPES = (None, "thread_broadcast", "file_share")


class _Slack(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --- Events API -------------------------------------------------------------------------------------------


class Authorization(_Slack):
    """Who the event was delivered for: ``user_id`` is our bot user."""

    team_id: str | None = None
    user_id: str | None = None
    is_bot: bool = False


class MessageEvent(_Slack):
    """An ``app_mention`` or ``message`` event (channel, group, im or mpim)."""

    type: Literal["app_mention", "message"]
    channel: str
    ts: str
    text: str = ""
    user: str | None = None
    bot_id: str | None = None
    subtype: str | None = None
    thread_ts: str | None = None
    channel_type: str | None = None  # "channel", "group", "im", "mpim"; absent on app_mention
    event_ts: str | None = None

    @property
    def from_bot(self) -> bool:
        """Posted by an app (ours or another): never answered, so bots cannot talk each other into loops."""
        return self.bot_id is not None or self.subtype == "bot_message"

    @property
    def from_person(self) -> bool:
        return self.user is not None and not self.from_bot and self.subtype in _HUMAN_SUBTYPES

    @property
    def is_dm(self) -> bool:
        return self.channel_type == "im" or self.channel.startswith("D")

    @property
    def root_ts(self) -> str:
        """The ts of the Slack thread this message lives in (itself when it is top-level)."""
        return self.thread_ts or self.ts


class EventCallback(_Slack):
    """The ``event_callback`` envelope around a message event."""

    type: Literal["event_callback"]
    team_id: str | None = None
    api_app_id: str | None = None
    event_id: str
    event_time: int | None = None
    event: MessageEvent
    authorizations: list[Authorization] = Field(default_factory=list)

    @property
    def bot_user_id(self) -> str | None:
        """Our bot's user id as Slack states it in the envelope (no auth.test needed)."""
        return next((a.user_id for a in self.authorizations if a.is_bot and a.user_id), None)


# --- interactivity ------------------------------------------------------------------------------------------


class User(_Slack):
    id: str
    username: str | None = None
    team_id: str | None = None


class Container(_Slack):
    type: str
    channel_id: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    is_ephemeral: bool = False


class ChannelInfo(_Slack):
    id: str


class MessageInfo(_Slack):
    ts: str
    thread_ts: str | None = None


class ButtonAction(_Slack):
    action_id: str
    type: str = "button"
    block_id: str | None = None
    value: str | None = None
    action_ts: str | None = None


class BlockActions(_Slack):
    """A click on one of our buttons. ``user.id`` is signed by Slack; the button value is only a pointer."""

    type: Literal["block_actions"]
    user: User
    trigger_id: str
    actions: list[ButtonAction] = Field(min_length=1)
    container: Container
    channel: ChannelInfo | None = None
    message: MessageInfo | None = None
    response_url: str | None = None

    @property
    def action(self) -> ButtonAction:
        return self.actions[0]

    @property
    def channel_id(self) -> str | None:
        return self.container.channel_id or (self.channel.id if self.channel else None)

    @property
    def message_ts(self) -> str | None:
        return self.container.message_ts or (self.message.ts if self.message else None)

    @property
    def thread_ts(self) -> str | None:
        """The Slack thread the clicked card sits in, for ephemeral answers next to it."""
        return self.container.thread_ts or (self.message.thread_ts if self.message else None)


class InputValue(_Slack):
    type: str
    value: str | None = None


class ViewState(_Slack):
    values: dict[str, dict[str, InputValue]] = Field(default_factory=dict)


class View(_Slack):
    id: str | None = None
    type: str
    callback_id: str
    private_metadata: str = ""
    state: ViewState = ViewState()


class ViewSubmission(_Slack):
    """A submitted modal (reject reason, edited arguments)."""

    type: Literal["view_submission"]
    user: User
    view: View

    def value(self, block_id: str, action_id: str) -> str | None:
        """The text typed into one input, stripped; None when empty."""
        found = self.view.state.values.get(block_id, {}).get(action_id)
        text = (found.value or "").strip() if found else ""
        return text or None


# --- slash command ------------------------------------------------------------------------------------------


class SlashCommand(_Slack):
    """The form Slack posts for ``/opsgate ...``."""

    command: str
    text: str = ""
    user_id: str
    channel_id: str
    team_id: str | None = None
    user_name: str | None = None
    channel_name: str | None = None
    response_url: str | None = None
    trigger_id: str | None = None


# --- what travels in our own blocks -------------------------------------------------------------------------


class CardRef(_Slack):
    """Which approval a button or modal is about, and where its card is. Never trusted for authorization."""

    thread_id: str
    approval_id: str
    channel: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None

    def to_value(self) -> str:
        """Compact JSON for a button value (<= 2000 chars) or a modal's private_metadata (<= 3000 chars)."""
        return self.model_dump_json(exclude_none=True, exclude_defaults=True)

    @classmethod
    def parse(cls, raw: str | None) -> CardRef:
        """Read a button value or private_metadata; ValueError with a clear message when it is not ours."""
        try:
            return cls.model_validate(json.loads(raw or ""))
        except (ValueError, ValidationError) as exc:
            raise ValueError(f"not an opsgate approval reference: {raw!r}") from exc


# --- text ---------------------------------------------------------------------------------------------------

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def mentions(text: str, user_id: str) -> bool:
    """Whether ``text`` contains a ``<@user_id>`` mention."""
    return any(m.group(1) == user_id for m in _MENTION.finditer(text))


def clean_text(text: str, bot_user_id: str | None) -> str:
    """The words a person typed: our own ``<@U…>`` tag removed, Slack's &amp;/&lt;/&gt; escapes undone."""
    if bot_user_id:
        text = _MENTION.sub(lambda m: "" if m.group(1) == bot_user_id else m.group(0), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split()) if "\n" not in text else text.strip()
