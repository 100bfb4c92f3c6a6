"""manifest.yml declares exactly what the Slack channel relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from channels.slack.route import EVENTS_PATH

MANIFEST = Path(__file__).resolve().parents[3] / "manifest.yml"


def manifest() -> dict[str, Any]:
    return dict(yaml.safe_load(MANIFEST.read_text()))


def test_scopes_and_events() -> None:
    """The bot scopes and events the issue requires are declared (and DMs are possible)."""
    data = manifest()
    scopes = set(data["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "chat:write", "im:history", "commands"} <= scopes
    assert {"users:read", "users:read.email"} <= scopes  # users.info email: approvers listed by address
    assert set(data["settings"]["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im"}
    assert data["features"]["app_home"]["messages_tab_enabled"] is True
    assert data["features"]["bot_user"]["display_name"] == "opsgate"


def test_every_request_url_is_the_one_bolt_endpoint() -> None:
    """Events, interactivity and the /opsgate command all point at https://YOUR-HOST/slack/events."""
    data = manifest()
    url = f"https://YOUR-HOST{EVENTS_PATH}"
    assert data["settings"]["event_subscriptions"]["request_url"] == url
    assert data["settings"]["interactivity"] == {"is_enabled": True, "request_url": url}
    [command] = data["features"]["slash_commands"]
    assert command["command"] == "/opsgate" and command["url"] == url
    assert data["settings"]["socket_mode_enabled"] is False  # HTTP by default; Socket Mode documented
    assert "SLACK_APP_TOKEN" in MANIFEST.read_text()
