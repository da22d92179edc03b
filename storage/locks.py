"""Jobs that must run in one place at a time (a mailbox reader, reminders).

On PostgreSQL a job is held with a session advisory lock on a connection of its own, kept
for the job's lifetime: when the holding process dies or loses its connection, the server
frees the lock and another instance takes the job over. The holder learns of a lost
connection only at its next check; so whoever takes a lock waits, before it starts the job,
until a holder that lost it has surely noticed and stopped (two checks), and holders check
often. On SQLite there is only ever one process, so an in-process lock is enough.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database

log = structlog.get_logger("tawasul.locks")

Job = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

# How often a holder checks that its connection (and so its lock) is alive, in seconds.
CHECK_EVERY = 1.0

# Jobs held in this process, per database; on SQLite that is every holder there can be.
_held_here: set[tuple[str, str]] = set()


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a job name (advisory locks take a bigint)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass
class Lease:
    """Holding a job; ``lost`` is set when the lock can no longer be vouched for."""

    name: str
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    backend_pid: int | None = None


@asynccontextmanager
async def singleton(
    db: Database, name: str, *, check_every: float = CHECK_EVERY
) -> AsyncIterator[Lease | None]:
    """Try once to take the job ``name``: a Lease while held, ``None`` if someone has it."""
    if not db.is_sqlite:
        async with _advisory(db, name, check_every) as lease:
            yield lease
        return
    key = (db.url, name)
    if key in _held_here:
        yield None
        return
    _held_here.add(key)
    try:
        yield Lease(name)
    finally:
        _held_here.discard(key)


@asynccontextmanager
async def _advisory(db: Database, name: str, check_every: float) -> AsyncIterator[Lease | None]:
    connection = await db.engine.connect()
    try:
        # Autocommit: the lock belongs to the session, not to a transaction left open.
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        got = await connection.scalar(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(name)}
        )
        if not got:
            yield None
            return
        pid = await connection.scalar(text("SELECT pg_backend_pid()"))
        lease = Lease(name, backend_pid=int(pid) if pid is not None else None)
        # A holder whose connection the server dropped (the lock is then free at once)
        # notices within a check and the check's own time limit: wait until it has.
        await asyncio.sleep(2 * check_every + 0.5)
        log.info("lock.taken", job=name)
        watcher = asyncio.create_task(_watch(connection, lease, check_every))
        try:
            yield lease
        finally:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
            log.info("lock.released", job=name)
    finally:
        # Never hand a connection that may still hold the lock back to the pool: closing
        # it is what releases the lock, also when unlocking would fail.
        with suppress(Exception):
            await connection.invalidate()
        with suppress(Exception):
            await connection.close()


async def _watch(connection: AsyncConnection, lease: Lease, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.wait_for(connection.scalar(text("SELECT 1")), timeout=every)
        except Exception:
            log.warning("lock.lost", job=lease.name)
            lease.lost.set()
            return


async def run_singleton(
    db: Database,
    name: str,
    job: Job,
    stop: asyncio.Event,
    *,
    retry_every: float = 5.0,
    check_every: float = CHECK_EVERY,
) -> None:
    """Run ``job`` while this process holds ``name``; otherwise retry until ``stop``.

    The job gets an event set on shutdown or when the lock is lost, and must return soon
    after; it is started again once the lock is back.
    """
    failures = 0  # in a row: the first is logged with its traceback, the next in a line
    while not stop.is_set():
        try:
            async with singleton(db, name, check_every=check_every) as lease:
                if lease is not None:
                    await _run_held(job, stop, lease)
            failures = 0
        except Exception as error:
            failures += 1
            if failures == 1:
                log.exception("lock.error", job=name)
            else:
                log.warning("lock.error", job=name, failures=failures, error=type(error).__name__)
        if stop.is_set():
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=retry_every)


async def _run_held(job: Job, stop: asyncio.Event, lease: Lease) -> None:
    job_stop = asyncio.Event()

    async def relay() -> None:
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(lease.lost.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        job_stop.set()

    relaying = asyncio.create_task(relay())
    try:
        await job(job_stop)
    finally:
        relaying.cancel()
        with suppress(asyncio.CancelledError):
            await relaying


def singleton_task(
    db: Database,
    name: str,
    job: Job,
    *,
    retry_every: float = 5.0,
    check_every: float = CHECK_EVERY,
) -> Job:
    """``job`` as a background task that runs on one instance at a time."""

    @functools.wraps(job)
    async def task(stop: asyncio.Event) -> None:
        await run_singleton(db, name, job, stop, retry_every=retry_every, check_every=check_every)

    task.__qualname__ = task.__name__ = name  # what /readyz lists
    return task
