"""Delivering a reply on a channel, and how a channel reports that it could not.

DeliveryError          try again later, with backoff
├── RateLimited        try again after ``retry_after`` seconds
├── Unreachable        never try this address again (blocked, opted out, bounced)
└── Held               not sent and not retried by itself: waits for staff (e.g. no
                       approved WhatsApp template outside the 24-hour window)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from conversations.messages import Channel, Reply


class DeliveryKind(StrEnum):
    """Why a message goes out; channels with rules per kind (WhatsApp templates) use it."""

    REPLY = "reply"  # an answer to what the beneficiary just wrote
    STAFF = "staff"  # a staff member's message
    DECISION = "decision"  # a change of a request's status
    SURVEY = "survey"  # the satisfaction survey
    REMINDER = "reminder"
    NOTIFICATION = "notification"


class DeliveryError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RateLimited(DeliveryError):
    def __init__(self, retry_after: float, reason: str = "rate limited") -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Unreachable(DeliveryError):
    pass


class Held(DeliveryError):
    pass


@dataclass(frozen=True, slots=True)
class Delivery:
    """One reply to deliver, with what a channel needs to address it well."""

    outbox_id: int
    channel: Channel
    address: str
    reply: Reply
    kind: DeliveryKind = DeliveryKind.REPLY
    lang: str = "ar"
    # When the beneficiary last wrote on this identity (WhatsApp's 24-hour window).
    last_inbound_at: datetime | None = None
    # The channel's id of the beneficiary's last message (email In-Reply-To) and its thread.
    in_reply_to: str | None = None
    thread_id: str | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    provider_id: str | None = None
    parts: int = 1


class Sender(Protocol):
    async def send(self, delivery: Delivery) -> Sent:
        """Deliver one reply, or raise a DeliveryError saying what to do next."""
        ...
