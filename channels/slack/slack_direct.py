"""Direct messages to one Slack user (sign-in links): chat.postMessage with the user id as the channel."""

from __future__ import annotations

from bot.people import SLACK_ID
from channels.slack.slack_outbound import SlackPost


def direct_post(user_id: str, text: str) -> SlackPost | None:
    """A DM to ``user_id`` (U…/W…): Slack delivers a post to a user id in the app's DM with them; None for
    anything that is not a Slack user id."""
    if not SLACK_ID.match(user_id):
        return None
    return SlackPost(channel=user_id, thread_ts=None, text=text)
