"""Sending one message with aiosmtplib, and sorting failures: retry later (4xx, connection) or give up (5xx).

aiosmtplib retries nothing itself; the core outbox dispatcher retries a ``DeliveryRetry`` with backoff and
records a ``DeliveryFailed`` on the thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from bot.config import Settings, TlsMode
from bot.errors import ConfigError, DeliveryFailed, DeliveryRetry

_DEFAULT_PORTS: dict[TlsMode, int] = {"ssl": 465, "starttls": 587, "none": 25}
_TIMEOUT = 30.0


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send."""

    host: str
    port: int
    tls: TlsMode
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        """SMTP_* settings; ConfigError when SMTP_HOST is missing."""
        if not settings.smtp_host:
            raise ConfigError("SMTP_HOST is not set")
        if bool(settings.smtp_username) != bool(settings.smtp_password):
            raise ConfigError("SMTP_USERNAME and SMTP_PASSWORD must be set together")
        port = settings.smtp_port or _DEFAULT_PORTS[settings.smtp_tls]
        return cls(settings.smtp_host, port, settings.smtp_tls, settings.smtp_username, settings.smtp_password)


def _classify(code: int, what: str) -> DeliveryRetry | DeliveryFailed:
    if 400 <= code < 500:
        return DeliveryRetry(f"SMTP {code} (temporary): {what}")
    return DeliveryFailed(f"SMTP {code}: {what}")


async def send(message: EmailMessage, config: SmtpConfig) -> None:
    """Send ``message`` to its To/Cc; raise DeliveryRetry or DeliveryFailed."""
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.tls == "ssl",
            start_tls=config.tls == "starttls",  # "none" must not upgrade even when offered
            timeout=_TIMEOUT,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        worst = max(exc.recipients, key=lambda r: r.code)  # any 5xx makes the refusal permanent
        raise _classify(worst.code, f"{worst.recipient} refused: {worst.message}") from None
    except aiosmtplib.SMTPResponseException as exc:
        raise _classify(exc.code, exc.message) from None
    except (aiosmtplib.SMTPException, OSError) as exc:  # connection refused/reset, timeout, TLS failure
        raise DeliveryRetry(f"SMTP {config.host}:{config.port} unreachable: {type(exc).__name__}: {exc}") from None
