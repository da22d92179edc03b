"""Defences in front of the application: security headers on every response, a
per-sender flood guard in front of ``Service.receive``, and the scheduled retention job."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.config import FloodConfig
from conversations.messages import Channel, Inbound, Reply, identity_kind
from conversations.state import State
from storage.locks import Job, singleton_task
from storage.repository import Tx
from storage.retention import JOB, retention_job

if TYPE_CHECKING:
    from bot.service import Service

log = structlog.get_logger("tawasul.security")

# -- headers -----------------------------------------------------------------------------------

# The web chat and the staff console load only their own scripts and style sheets and have no
# inline script, inline style or style attribute, so nothing inline is allowed. Scripts only
# change styles through the CSSOM (element.style), which CSP does not restrict. The favicon
# is an empty data: URL.
PAGE_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ]
)
# FastAPI's interactive API page is built from a CDN bundle and an inline start-up script.
DOCS_PATHS = ("/api/docs", "/docs/oauth2-redirect")
DOCS_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'",
        "style-src 'self' https://cdn.jsdelivr.net",
        "img-src 'self' data: https://fastapi.tiangolo.com",
        "connect-src 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ]
)
PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
)
COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", PERMISSIONS_POLICY.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    """Add the security headers to every HTTP response that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        policy = DOCS_POLICY if path.startswith(DOCS_PATHS) else PAGE_POLICY
        extra = [*COMMON_HEADERS, (b"content-security-policy", policy.encode())]
        if scope.get("scheme") == "https":
            extra.append(HSTS)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


# -- flood control -----------------------------------------------------------------------------

# Limits per sender (one person on WhatsApp and SMS counts once), from the [flood] settings.
# A person typing fast sends a message every few seconds; a script sends hundreds a minute.
# Senders quiet for a whole window are forgotten once a window (a pass over the table when a
# new sender comes), and at once when this many are tracked: memory follows the senders of the
# last minute or so, not every sender since the start (about 1 KB each).
FLOOD_TRACKED_SENDERS = 50_000
# The terminal is the operator's own.
UNGUARDED = frozenset({Channel.CONSOLE})
_SHIPPED = FloodConfig()


@dataclass(frozen=True, slots=True)
class FloodLimits:
    window: float = _SHIPPED.window_seconds
    slow_after: int = _SHIPPED.slow_after
    slow_seconds: float = _SHIPPED.slow_seconds
    max_wait: float = _SHIPPED.max_wait_seconds
    block_after: int = _SHIPPED.block_after
    block_seconds: float = _SHIPPED.block_minutes * 60
    notify: bool = _SHIPPED.notify_blocked

    @classmethod
    def from_config(cls, config: FloodConfig) -> FloodLimits:
        return cls(
            window=config.window_seconds,
            slow_after=config.slow_after,
            slow_seconds=config.slow_seconds,
            max_wait=config.max_wait_seconds,
            block_after=config.block_after,
            block_seconds=config.block_minutes * 60,
            notify=config.notify_blocked,
        )


class Verdict(StrEnum):
    PASS = "pass"
    SLOW = "slow"  # pass after the returned wait
    BLOCK = "block"  # ignored from now on; the sender is told once
    IGNORE = "ignore"  # ignored, already told


@dataclass(slots=True)
class _Sender:
    seen: deque[float] = field(default_factory=deque)
    next_slot: float = 0.0
    blocked_until: float = 0.0


class FloodGuard:
    """Counts each sender's messages in a sliding window, in memory (per process)."""

    def __init__(
        self, limits: FloodLimits | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or FloodLimits()
        self.clock = clock
        self._senders: dict[tuple[str, str], _Sender] = {}
        self._swept = self.clock()

    def check(self, kind: str, address: str) -> tuple[Verdict, float]:
        """The verdict on one more message from this sender, and how long it must wait."""
        now = self.clock()
        limits = self.limits
        key = (kind, address)
        sender = self._senders.get(key)
        if sender is None:
            full = len(self._senders) >= FLOOD_TRACKED_SENDERS
            if full or now - self._swept >= limits.window:
                self._forget_quiet(now)
            sender = self._senders[key] = _Sender()
        if sender.blocked_until:
            if now < sender.blocked_until:
                return Verdict.IGNORE, 0.0
            sender.blocked_until = 0.0
            sender.seen.clear()
        count = self._recent(sender, now) + 1
        sender.seen.append(now)
        if count <= limits.slow_after:
            return Verdict.PASS, 0.0
        slot = max(now, sender.next_slot)
        wait = slot - now
        if count > limits.block_after or wait > limits.max_wait:
            sender.blocked_until = now + limits.block_seconds
            sender.next_slot = 0.0
            return Verdict.BLOCK, 0.0
        sender.next_slot = slot + limits.slow_seconds
        return Verdict.SLOW, wait

    def pressed(self, kind: str, address: str) -> bool:
        """Whether this sender is slowed or blocked, or would be by one more message."""
        sender = self._senders.get((kind, address))
        if sender is None:
            return False
        now = self.clock()
        return now < sender.blocked_until or self._recent(sender, now) >= self.limits.slow_after

    def _recent(self, sender: _Sender, now: float) -> int:
        """How many of the sender's messages fall in the window ending now (older ones are
        dropped)."""
        while sender.seen and sender.seen[0] <= now - self.limits.window:
            sender.seen.popleft()
        return len(sender.seen)

    def _forget_quiet(self, now: float) -> None:
        self._swept = now
        horizon = now - self.limits.window
        for key in [
            k
            for k, s in self._senders.items()
            if s.blocked_until <= now and (not s.seen or s.seen[-1] <= horizon)
        ]:
            del self._senders[key]


_guards: weakref.WeakKeyDictionary[Service, FloodGuard] = weakref.WeakKeyDictionary()


def flood_guard(service: Service) -> FloodGuard:
    guard = _guards.get(service)
    if guard is None:
        guard = _guards[service] = FloodGuard(FloodLimits.from_config(service.config.flood))
    return guard


async def admit(service: Service, msg: Inbound, *, wait: bool = True) -> bool:
    """Whether ``receive`` should store this message; a slowed sender waits here first.

    ``wait=False``: a slowed sender's message passes at once. The mailbox reader takes
    one mail after the other, so waiting for one sender would hold every sender's mail;
    mail comes slowly anyway, and a loop or a script still reaches the block."""
    if msg.channel in UNGUARDED:
        return True
    guard, kind = flood_guard(service), identity_kind(msg.channel)
    # A channel retries a message it got no answer for (a slowed sender's webhook can take
    # longer than Twilio waits): the retry of one already stored is not counted again. Only
    # for a sender near the limits, so that the usual message costs no read.
    if (
        msg.channel_message_id
        and guard.pressed(kind, msg.sender_id)
        and await service.received(msg.channel, msg.channel_message_id)
    ):
        return False
    verdict, pause = guard.check(kind, msg.sender_id)
    if verdict is Verdict.SLOW:
        if wait:
            await asyncio.sleep(pause)
        return True
    if verdict is Verdict.BLOCK:
        await _tell_blocked(service, msg)
        return False
    return verdict is Verdict.PASS


async def _tell_blocked(service: Service, msg: Inbound) -> None:
    limits = flood_guard(service).limits
    minutes = max(1, round(limits.block_seconds / 60))
    if not limits.notify:
        log.warning("security.flood_blocked", channel=msg.channel.value, minutes=minutes)
        return
    async with service.db.session() as session:
        tx = Tx(session)
        identity = await tx.identity(identity_kind(msg.channel), msg.sender_id)
        conversation = await tx.open_conversation(identity.beneficiary_id)
        conversation.last_channel = msg.channel.value
        conversation.last_identity_id = identity.id
        lang = State.from_json(conversation.state).lang or "ar"
        duration = service.catalog.minutes(lang, minutes)
        reply = Reply(
            service.catalog.text(lang, "security.flood", minutes=duration),
            short_text=service.catalog.short(lang, "security.flood", minutes=duration),
            key="security.flood",
            params=(("minutes", duration),),
        )
        await tx.queue_replies(conversation, [reply], identity_id=identity.id, kind="notification")
    service.outbox_wakeup.set()
    log.warning(
        "security.flood_blocked",
        channel=msg.channel.value,
        identity_id=identity.id,
        conversation_id=conversation.id,
        minutes=minutes,
    )


# -- retention ---------------------------------------------------------------------------------


def scheduled_retention(service: Service) -> Job:
    """Retention every ``[retention] run_hours``, on one server instance at a time."""
    config = service.config.retention
    job = retention_job(
        service.db, service.files, months=config.months, every=timedelta(hours=config.run_hours)
    )
    return singleton_task(service.db, JOB, job)
