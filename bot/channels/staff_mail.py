"""Mail to staff (queue alerts, request reminders) through the [email] section's SMTP server."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from adapters.email.smtp import SmtpSettings, submit
from bot.config import Config, EmailConfig, can_send_mail


def bot_address(cfg: EmailConfig) -> str:
    """The address the bot's mail comes from (empty when none is configured)."""
    return (cfg.address or cfg.username).strip().lower()


def smtp_settings(cfg: EmailConfig) -> SmtpSettings:
    """How to reach the SMTP server of the [email] section."""
    return SmtpSettings(
        host=cfg.smtp_host,
        port=cfg.smtp_port,
        security=cfg.smtp_security,
        username=cfg.username or bot_address(cfg),
        password=cfg.password,
    )


class StaffMailer:
    """Short plain-text mail from the bot's address to staff accounts."""

    def __init__(self, sender: str, name: str, settings: SmtpSettings) -> None:
        self.sender = sender
        self.name = name
        self.settings = settings

    @classmethod
    def from_config(cls, config: Config) -> StaffMailer | None:
        """None when no SMTP server or no sender address is configured."""
        if not can_send_mail(config.email):
            return None
        return cls(
            bot_address(config.email), config.organization.name_ar, smtp_settings(config.email)
        )

    def compose(self, to: Sequence[str], subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = formataddr((self.name, self.sender))
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain=self.sender.rsplit("@", 1)[1])
        # Staff alerts are machine mail: out-of-office answers should stay away.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body)
        return message

    async def send(self, to: Sequence[str], subject: str, body: str) -> None:
        """Raises ``DeliveryError`` (``Unreachable`` when every address is refused)."""
        await submit(self.settings, self.compose(to, subject, body))


def console_link(config: Config, path: str) -> str:
    """An absolute link to a console page, or "" when no public address is configured."""
    base = (config.staff.public_base_url or config.telegram.public_base_url).rstrip("/")
    return f"{base}/staff/{path.lstrip('/')}" if base else ""
