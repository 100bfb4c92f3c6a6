"""Fixtures of the email tests: the saved messages, and the real mail servers from tests/support/mail_servers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.mail_servers import dovecot_server, mailbox_user, smtp_server

__all__ = ["dovecot_server", "mailbox_user", "smtp_server"]

MESSAGES = Path(__file__).parent / "messages"


def raw_message(name: str, **replacements: str) -> bytes:
    """A saved message (tests/channels/email/messages/NAME.eml), with placeholders such as TOKEN replaced."""
    text = (MESSAGES / f"{name}.eml").read_text()
    for key, value in replacements.items():
        text = text.replace(key, value)
    return text.replace("\n", "\r\n").encode()


@pytest.fixture
def messages() -> Path:
    """The folder of saved messages."""
    return MESSAGES
