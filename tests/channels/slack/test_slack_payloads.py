"""Parsing Slack's payloads and deciding which messages to act on, on saved realistic payloads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from channels.slack.slack_inbound import command_text, incoming
from channels.slack.slack_payloads import (
    BlockActions,
    CardRef,
    EventCallback,
    SlashCommand,
    ViewSubmission,
    clean_text,
    mentions,
)
from tests.channels.slack.slack_requests import load
from tests.support.fake_slack import BOT_USER_ID


def test_mention_becomes_a_message_without_the_bot_tag() -> None:
    """An app_mention is addressed to us; the text loses our <@bot> tag and Slack's &amp; escapes."""
    message = incoming(EventCallback.model_validate(load("app_mention")), None)
    assert message is not None
    assert message.text == "please deploy api 1.4.2 to production & tell me when it is done"
    assert (message.user, message.channel, message.event_id) == ("UALICE01", "C0OPS0001", "Ev0MENTION01")
    assert message.addressed
    assert message.root_ts == message.ts == "1732270000.000100"


def test_mention_inside_a_thread_points_at_the_thread_root() -> None:
    """A mention in a Slack thread keeps its own ts but belongs to the thread's root ts."""
    message = incoming(EventCallback.model_validate(load("app_mention_in_thread")), BOT_USER_ID)
    assert message is not None
    assert message.ts == "1732270100.000300"
    assert message.root_ts == "1732270000.000100"
    assert message.text == "version 1.4.3 instead"


def test_direct_message_is_addressed_to_us() -> None:
    """A message.im needs no mention."""
    message = incoming(EventCallback.model_validate(load("message_im")), BOT_USER_ID)
    assert message is not None
    assert message.addressed and message.text == "rollback billing in staging"
    assert message.channel == "D0BOBDM01"


@pytest.mark.parametrize("name", ["message_im_from_our_bot", "message_from_other_bot", "message_changed"])
def test_bots_and_edits_are_ignored(name: str) -> None:
    """Our own posts, other bots' posts (even mentioning us) and edits are never answered."""
    assert incoming(EventCallback.model_validate(load(name)), BOT_USER_ID) is None


def test_own_user_id_is_ignored_even_without_bot_id() -> None:
    """A message whose user is our bot user is ignored, whatever its subtype."""
    envelope = load("message_im")
    envelope["event"]["user"] = BOT_USER_ID
    assert incoming(EventCallback.model_validate(envelope), None) is None


def test_plain_channel_reply_may_only_continue_a_thread() -> None:
    """A channel message without a mention (message.channels) is not addressed: it cannot start a thread."""
    message = incoming(EventCallback.model_validate(load("message_channel_reply")), BOT_USER_ID)
    assert message is not None
    assert not message.addressed
    assert message.root_ts == "1732270000.000100"


def test_channel_message_with_mention_is_left_to_app_mention() -> None:
    """With message.channels subscribed, a mention arrives twice; only the app_mention copy counts."""
    envelope = load("message_channel_reply")
    envelope["event"]["text"] = f"<@{BOT_USER_ID}> production, please"
    assert incoming(EventCallback.model_validate(envelope), BOT_USER_ID) is None


def test_bare_mention_asks_for_help() -> None:
    """'@opsgate' alone becomes !help."""
    envelope = load("app_mention")
    envelope["event"]["text"] = f"<@{BOT_USER_ID}>"
    message = incoming(EventCallback.model_validate(envelope), None)
    assert message is not None and message.text == "!help"


def test_event_without_event_id_is_rejected() -> None:
    """The event id is what de-duplicates retries: an envelope without one does not parse."""
    envelope = load("app_mention")
    del envelope["event_id"]
    with pytest.raises(ValidationError):
        EventCallback.model_validate(envelope)


def test_clean_text_keeps_other_mentions_and_lines() -> None:
    """Only our own tag goes; other people's mentions and line breaks stay."""
    text = f"<@{BOT_USER_ID}> ask <@UCAROL01> first\nthen &lt;deploy&gt;"
    assert clean_text(text, BOT_USER_ID) == "ask <@UCAROL01> first\nthen <deploy>"
    assert mentions(text, "UCAROL01") and not mentions(text, "UNOBODY1")


def test_block_actions_payload() -> None:
    """A button click: the signed user, the card's place, the button value."""
    click = BlockActions.model_validate(load("block_actions_approve"))
    assert click.user.id == "UCAROL01"
    assert click.action.action_id == "opsgate_approve"
    assert (click.channel_id, click.message_ts, click.thread_ts) == (
        "C0OPS0001", "1732270010.000200", "1732270000.000100")


def test_view_submission_values() -> None:
    """The reject modal's reason is read from state.values[block][action]; blank counts as missing."""
    submission = ViewSubmission.model_validate(load("view_submission_reject"))
    assert submission.view.callback_id == "opsgate_reject"
    assert submission.value("reason", "reason") == "release freeze until Monday"
    assert submission.value("reason", "other") is None


def test_slash_command_form() -> None:
    """The slash command form parses; its text becomes an explicit !command."""
    command = SlashCommand.model_validate(load("slash_command"))
    assert command.command == "/opsgate" and command.user_id == "UALICE01"
    assert command_text(command.text) == "!deploy service=api version=1.4.2 environment=staging"


@pytest.mark.parametrize("text", ["", "  ", "help", "HELP", "!help"])
def test_empty_or_help_command_is_help(text: str) -> None:
    """/opsgate, /opsgate help -> !help."""
    assert command_text(text) == "!help"


def test_card_ref_round_trip_and_garbage() -> None:
    """A button value round-trips; anything else is a clear ValueError, never a KeyError."""
    ref = CardRef(thread_id="t1", approval_id="a1")
    assert CardRef.parse(ref.to_value()) == ref
    assert len(ref.to_value()) < 100
    for garbage in (None, "", "t1:a1", '{"thread_id": "t1"}', "[]"):
        with pytest.raises(ValueError, match="not an opsgate approval"):
            CardRef.parse(garbage)
