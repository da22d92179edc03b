"""Operations: Prometheus metrics, readiness, and the log context of a message's processing.

Each Service owns its registry, so several applications can live in one process (tests, or
an embedding program) without their counters mixing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

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
from storage.migrate import current_revision, head_revision
from storage.models import Conversation, OutboxItem

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
        self.outbox_depth = Gauge(
            "tawasul_outbox_items", "Outbox items by status", ["status"], registry=r
        )
        self.staff_queue = Gauge(
            "tawasul_staff_queue", "Conversations waiting for a staff member", registry=r
        )
        self.staff_wait = Gauge(
            "tawasul_staff_queue_oldest_seconds",
            "How long the longest-waiting conversation has waited for staff",
            registry=r,
        )

    async def refresh(self, db: Database) -> None:
        """Gauges that are read from the database when scraped (shared by all instances)."""
        from storage.models import utcnow

        async with db.session(write=False) as session:
            counts = dict(
                (
                    await session.execute(
                        select(OutboxItem.status, func.count())
                        .where(OutboxItem.status.in_(OUTBOX_STATES))
                        .group_by(OutboxItem.status)
                    )
                ).all()
            )
            queued, oldest = (
                await session.execute(
                    select(func.count(), func.min(Conversation.queued_at)).where(
                        Conversation.status == "queued"
                    )
                )
            ).one()
        for status in OUTBOX_STATES:
            self.outbox_depth.labels(status).set(counts.get(status, 0))
        self.staff_queue.set(queued or 0)
        if oldest is not None:
            if oldest.tzinfo is None:
                from datetime import UTC

                oldest = oldest.replace(tzinfo=UTC)
            self.staff_wait.set(max(0.0, (utcnow() - oldest).total_seconds()))
        else:
            self.staff_wait.set(0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True)
class Readiness:
    database: bool
    migrations: bool
    channels: dict[str, bool]

    @property
    def ready(self) -> bool:
        return self.database and self.migrations and all(self.channels.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "not_ready",
            "database": self.database,
            "migrations": self.migrations,
            "channels": self.channels,
        }


async def readiness(
    db: Database, tasks: Sequence[tuple[str, asyncio.Task[None]]], *, seconds: float = 3.0
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
    return Readiness(database, migrations, {name: not task.done() for name, task in tasks})
