"""Sending through a real SMTP server (aiosmtpd): success, 4xx -> retry, 5xx -> failure, server down -> retry."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from bot.config import load_settings
from bot.errors import ConfigError, DeliveryFailed, DeliveryRetry
from channels.email.smtp_sender import SmtpConfig, send
from tests.support.mail_servers import SmtpRecorder, smtp_env
from tests.support.servers import free_port


def _message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "opsgate@example.com"
    msg["To"] = "bob@example.com"
    msg["Subject"] = "hello"
    msg["Message-ID"] = "<m1@example.com>"
    msg.set_content("body")
    return msg


def _config(recorder: SmtpRecorder) -> SmtpConfig:
    return SmtpConfig.from_settings(load_settings(smtp_env(recorder)))


async def test_message_is_delivered(smtp_server: SmtpRecorder) -> None:
    """The server receives the message with its envelope recipient."""
    await send(_message(), _config(smtp_server))
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["bob@example.com"] and received.message["Message-ID"] == "<m1@example.com>"


async def test_temporary_refusal_is_a_retry(smtp_server: SmtpRecorder) -> None:
    """451 means try again later."""
    smtp_server.refuse("451 4.3.0 mailbox busy, try later")
    with pytest.raises(DeliveryRetry, match="451"):
        await send(_message(), _config(smtp_server))
    assert smtp_server.messages == [] and smtp_server.refused == 1


async def test_permanent_refusal_is_a_failure(smtp_server: SmtpRecorder) -> None:
    """550 is final."""
    smtp_server.refuse("550 5.1.1 no such user")
    with pytest.raises(DeliveryFailed, match="550"):
        await send(_message(), _config(smtp_server))


async def test_server_down_is_a_retry() -> None:
    """Connection refused is temporary."""
    config = SmtpConfig(host="127.0.0.1", port=free_port(), tls="none")
    with pytest.raises(DeliveryRetry, match="unreachable"):
        await send(_message(), config)


def test_half_configured_credentials_are_a_config_error() -> None:
    """SMTP_USERNAME without SMTP_PASSWORD is reported at start-up."""
    with pytest.raises(ConfigError, match="SMTP_USERNAME and SMTP_PASSWORD"):
        SmtpConfig.from_settings(load_settings({"SMTP_HOST": "smtp.example.com", "SMTP_USERNAME": "x"}))
    defaults = SmtpConfig.from_settings(load_settings({"SMTP_HOST": "smtp.example.com", "SMTP_TLS": "ssl"}))
    assert defaults.port == 465
