"""Sending mail with aiosmtplib; its errors become ours here.

A 5xx refusal of the recipient means the address does not exist: ``Unreachable``.
Everything else (connection, timeouts, 4xx, a refused login) is worth another try later:
``DeliveryError``, which the outbox retries with backoff.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

import aiosmtplib
import structlog

from conversations.delivery import Delivery, DeliveryError, Sent, Unreachable

log = structlog.get_logger("tawasul.email")

Security = Literal["none", "starttls", "tls"]
Compose = Callable[[Delivery], Awaitable[EmailMessage]]


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: Security
    username: str = ""
    password: str = ""
    timeout: float = 60.0
    # None: the system's trusted certificates.
    tls_context: ssl.SSLContext | None = None


class SmtpSender:
    """The outbox's sender for email: one SMTP session a mail (mail is not chatty)."""

    def __init__(self, settings: SmtpSettings, compose: Compose) -> None:
        self.settings = settings
        self.compose = compose

    async def send(self, delivery: Delivery) -> Sent:
        message = await self.compose(delivery)
        await self.submit(message)
        return Sent(provider_id=str(message["Message-ID"]))

    async def submit(self, message: EmailMessage) -> None:
        await submit(self.settings, message)


async def submit(cfg: SmtpSettings, message: EmailMessage) -> None:
    """Hand one mail to the SMTP server; our delivery errors on failure."""
    try:
        await aiosmtplib.send(
            message,
            hostname=cfg.host,
            port=cfg.port,
            username=cfg.username or None,
            password=cfg.password or None,
            use_tls=cfg.security == "tls",
            start_tls=cfg.security == "starttls",
            tls_context=cfg.tls_context,
            timeout=cfg.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [e.code for e in exc.recipients]
        if codes and all(500 <= c < 600 for c in codes):
            raise Unreachable(f"recipient refused ({codes[0]})") from None
        raise DeliveryError(f"recipient deferred ({codes[0] if codes else '?'})") from None
    except aiosmtplib.SMTPRecipientRefused as exc:
        if 500 <= exc.code < 600:
            raise Unreachable(f"recipient refused ({exc.code})") from None
        raise DeliveryError(f"recipient deferred ({exc.code})") from None
    except aiosmtplib.SMTPAuthenticationError as exc:
        log.error("email.smtp_login_refused", code=exc.code)
        raise DeliveryError(f"SMTP login refused ({exc.code})") from None
    except aiosmtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {exc.code}") from None
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
        raise DeliveryError(f"SMTP {type(exc).__name__}") from None
