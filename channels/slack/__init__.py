"""The Slack channel: mentions, DMs and /opsgate become threads; approvals are Block Kit cards."""

from channels.slack.slack_channel import SlackChannel

__all__ = ["SlackChannel"]
