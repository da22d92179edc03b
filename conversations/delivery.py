"""How a channel reports a failed delivery, so the outbox knows what to do next.

DeliveryError          try again later, with backoff
├── RateLimited        try again after ``retry_after`` seconds
└── Unreachable        never try this address again (blocked, opted out, bounced)
"""

from __future__ import annotations

from typing import Protocol

from conversations.messages import Reply


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


class Sender(Protocol):
    async def send(self, address: str, reply: Reply) -> str | None:
        """Deliver one reply; return the channel's id for it when there is one."""
        ...
