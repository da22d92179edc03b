"""Operations: Prometheus metrics, readiness, and the log context of a message's processing.

Each Service owns its registry, so several applications can live in one process (tests, or
an embedding program) without their counters mixing.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import func, select, text

from storage.db import Database
from storage.locks import Job
from storage.migrate import current_revision, head_revision
from storage.models import Conversation, OutboxItem, utcnow

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST
OUTBOX_STATES = ("pending", "sending", "held", "failed")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages_in = Counter(
            "tawasul_messages_in", "Inbound messages stored, by channel", ["channel"], registry=r
        )
        self.duplicates = Counter(
            "tawasul_messages_duplicate",
            "Inbound messages recognised as repeats and not stored again",
            ["channel"],
            registry=r,
        )
        self.set_aside = Counter(
            "tawasul_messages_set_aside",
            "Inbound messages the engine failed on again and again, handed to staff unprocessed",
            registry=r,
        )
        self.messages_out = Counter(
            "tawasul_messages_out", "Replies delivered, by channel", ["channel"], registry=r
        )
        self.outbox_errors = Counter(
            "tawasul_outbox_errors",
            "Failed delivery attempts, by channel and outcome (retry, failed, held, unreachable)",
            ["channel", "outcome"],
            registry=r,
        )
        self.processing = Histogram(
            "tawasul_processing_seconds",
            "Time to run the engine on one stored message (lock, step, save)",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.delivery = Histogram(
            "tawasul_delivery_seconds",
            "Time from a reply queued to its delivery, retries included, by channel",
            ["channel"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
        )
        self.outbox_depth = Gauge(
            "tawasul_outbox_items",
            "Outbox items by status and channel (web chat replies wait as pending until the "
            "visitor's page fetches them)",
            ["status", "channel"],
            registry=r,
        )
        self._outbox_series: set[tuple[str, str]] = set()
        self.staff_queue = Gauge(
            "tawasul_staff_queue", "Conversations waiting for a staff member", registry=r
        )
        self.staff_wait = Gauge(
            "tawasul_staff_queue_oldest_seconds",
            "How long the longest-waiting conversation has waited for staff",
            registry=r,
        )
        self.channel_connected = Gauge(
            "tawasul_channel_connected",
            "1 where this instance holds the channel's link (Telegram polling, the mailbox "
            "reader) and it works; summed over instances it should be 1",
            ["channel"],
            registry=r,
        )
        # The links this instance can hold, by channel (webhook-only channels have none).
        self.links: dict[str, Link] = {}

    def delivered(self, channel: str, queued_at: datetime | None) -> None:
        self.messages_out.labels(channel).inc()
        if queued_at is not None:
            if queued_at.tzinfo is None:
                queued_at = queued_at.replace(tzinfo=UTC)
            self.delivery.labels(channel).observe(max(0.0, (utcnow() - queued_at).total_seconds()))

    def link(self, channel: str, state: str | None = None) -> Link:
        """The link of ``channel``, registered on first use; ``state`` changes it."""
        link = self.links.setdefault(channel, Link())
        if state is not None:
            link.state = state
        return link

    async def refresh(self, db: Database) -> None:
        """Gauges that are read from the database when scraped (shared by all instances)."""
        async with db.session(write=False) as session:
            counts: dict[tuple[str, str], int] = {
                (status, channel): count
                for status, channel, count in await session.execute(
                    select(OutboxItem.status, OutboxItem.channel, func.count())
                    .where(OutboxItem.status.in_(OUTBOX_STATES))
                    .group_by(OutboxItem.status, OutboxItem.channel)
                )
            }
            queued, oldest = (
                await session.execute(
                    select(func.count(), func.min(Conversation.queued_at)).where(
                        Conversation.status == "queued"
                    )
                )
            ).one()
        for channel, link in self.links.items():
            self.channel_connected.labels(channel).set(link.current() == CONNECTED)
        # Every series shown once stays, at 0 when emptied; new ones appear as they come.
        self._outbox_series |= set(counts)
        for status, channel in self._outbox_series:
            self.outbox_depth.labels(status, channel).set(counts.get((status, channel), 0))
        self.staff_queue.set(queued or 0)
        if oldest is not None:
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)
            self.staff_wait.set(max(0.0, (utcnow() - oldest).total_seconds()))
        else:
            self.staff_wait.set(0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# What a channel's link is doing on this instance.
CONNECTED = "connected"  # held here, and the last exchange with the provider worked
FAILING = "failing"  # held here, but the provider refuses or cannot be reached (retrying)
STANDBY = "standby"  # another instance holds it; this one takes over if that one dies
WEBHOOK = "webhook"  # nothing to hold: the provider calls us, on any instance


@dataclass
class Link:
    state: str = STANDBY
    failing: Callable[[], bool] | None = None  # asked while connected, for links that know

    def current(self) -> str:
        if self.state == CONNECTED and self.failing is not None and self.failing():
            return FAILING
        return self.state


def linked(link: Link, job: Job) -> Job:
    """``job`` (a singleton's body) marks ``link`` connected while it runs here."""

    @functools.wraps(job)
    async def run(stop: asyncio.Event) -> None:
        link.state = CONNECTED
        try:
            await job(stop)
        finally:
            link.state = STANDBY

    return run


def channel_states(metrics: Metrics, enabled: Sequence[str]) -> dict[str, str]:
    return {
        name: metrics.links[name].current() if name in metrics.links else WEBHOOK
        for name in enabled
    }


@dataclass(frozen=True)
class Readiness:
    database: bool
    migrations: bool
    tasks: dict[str, bool]
    channels: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Whether this instance should get traffic. A provider that is down does not make
        it unready: webhooks are still taken and stored, replies wait in the outbox."""
        return self.database and self.migrations and all(self.tasks.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "not_ready",
            "database": self.database,
            "migrations": self.migrations,
            "tasks": self.tasks,
            "channels": self.channels,
        }


async def readiness(
    db: Database,
    tasks: Sequence[tuple[str, asyncio.Task[None]]],
    *,
    channels: dict[str, str] | None = None,
    seconds: float = 3.0,
) -> Readiness:
    database = migrations = False
    try:
        async with asyncio.timeout(seconds):
            async with db.session(write=False) as session:
                await session.execute(text("SELECT 1"))
            database = True
            migrations = await current_revision(db.engine) == await asyncio.to_thread(head_revision)
    except Exception:  # any failure of the database means "not ready"
        pass
    alive = {name: not task.done() for name, task in tasks}
    return Readiness(database, migrations, alive, dict(channels or {}))
