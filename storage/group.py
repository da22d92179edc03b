"""Group commit: many small units of work share one transaction and one disk flush.

On SQLite every commit waits for the disk (synchronous=FULL), and one writer at a time may
commit; a unit of work (store one inbound message, process one message) takes far less time
than that flush. So one writer task takes the units queued while the previous transaction
was committing, runs them one after the other in a single transaction, commits once, and
only then tells each caller its result: a caller that was told "done" knows its unit is on
disk. Units run one at a time, in the order they were queued (urgent ones first), so two
units of one conversation never overlap and never swap places. Urgent units queued while a
batch runs its units join the end of that batch: an acknowledgement then waits for one
commit rather than two.

When a unit raises, the transaction is rolled back and nothing of the batch is kept; the
units before it run again as a batch, the failing unit runs alone (it fails on its own
account or succeeds), and those after it go back to the queue. Units that name the same
``key`` as a unit that failed, and were queued behind it, are refused with ``OrderHeld``
rather than run ahead of it. A unit must therefore do nothing outside the database that it
could not do twice (count, log and wake others after it returns).

On PostgreSQL, which has its own group commit and many connections, each unit runs in its
own transaction at once: nothing is queued. When PostgreSQL ends the transaction to break a
deadlock or a serialisation conflict (the other transaction goes on), nothing of it was kept,
and the unit runs again after a short random pause, up to ``CONFLICT_ATTEMPTS`` times in all:
the caller (a webhook waiting to be acknowledged) sees a failure only if the conflict lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.sqlite_loop import on_the_loop

log = structlog.get_logger("tawasul.storage")

T = TypeVar("T")
A = TypeVar("A")
Unit = Callable[[AsyncSession], Awaitable[T]]

# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back
# whole so that another could go on, and running it again is the documented remedy.
CONFLICTS = frozenset({"40P01", "40001"})
CONFLICT_ATTEMPTS = 4
CONFLICT_PAUSE = 0.02  # seconds; doubled at each attempt, the pause drawn at random below it


def sqlstate(error: BaseException) -> str | None:
    """PostgreSQL's SQLSTATE of a failed statement, if the error carries one."""
    code = getattr(error.orig, "sqlstate", None) if isinstance(error, DBAPIError) else None
    return code if isinstance(code, str) else None


def conflict(error: BaseException) -> str | None:
    """The SQLSTATE when PostgreSQL rolled the transaction back over a conflict, else None."""
    code = sqlstate(error)
    return code if code in CONFLICTS else None


class OrderHeld(RuntimeError):
    """Not run: an earlier unit with the same key failed, and order must be kept."""


@dataclass(eq=False)
class _Queued(Generic[T]):
    unit: Unit[T]
    key: Hashable | None
    urgent: bool
    future: asyncio.Future[T]


@dataclass
class _Failed:
    at: int
    error: BaseException


@dataclass
class GroupStats:
    batches: int = 0
    units: int = 0
    largest: int = 0
    splits: int = 0
    conflicts: int = 0  # PostgreSQL transactions run again after a deadlock or conflict
    sizes: dict[int, int] = field(default_factory=dict)


class GroupCommit:
    """One writer task committing queued units together (SQLite); direct on PostgreSQL."""

    def __init__(self, db: Database, *, max_units: int = 128, max_seconds: float = 0.005) -> None:
        self.db = db
        self.max_units = max_units
        # A batch stops taking background units after this long, so that an acknowledgement
        # queued behind it does not wait for a long run of engine steps.
        self.max_seconds = max_seconds
        self.batching = db.is_sqlite
        self.stats = GroupStats()
        self._urgent: deque[_Queued[Any]] = deque()
        self._background: deque[_Queued[Any]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Event | None = None

    async def run(self, unit: Unit[T], *, key: Hashable | None = None, urgent: bool = False) -> T:
        """Run ``unit(session)`` in a transaction; returns once that transaction committed.

        ``urgent`` units (a channel waits to be acknowledged) go ahead of the others;
        ``key`` keeps the order of units that must not pass one another.
        """
        if not self.batching:
            return await self._run_alone(unit)
        self._ensure_writer()
        assert self._wakeup is not None and self._idle is not None
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._background).append(_Queued(unit, key, urgent, future))
        self._idle.clear()
        self._wakeup.set()
        return await future

    async def _run_alone(self, unit: Unit[T]) -> T:
        """PostgreSQL: the unit in its own transaction, run again after a conflict."""
        attempt = 1
        while True:
            try:
                async with self.db.session() as session:
                    return await unit(session)
            except DBAPIError as exc:
                code = conflict(exc)
                if code is None or attempt >= CONFLICT_ATTEMPTS:
                    raise
                self.stats.conflicts += 1
                log.warning("group_commit.conflict", sqlstate=code, attempt=attempt)
                await asyncio.sleep(random.uniform(0, CONFLICT_PAUSE * 2 ** (attempt - 1)))
                attempt += 1

    async def close(self) -> None:
        """Finish the queued units, then stop the writer."""
        writer = self._writer
        if writer is None or writer.done() or self._loop is not asyncio.get_running_loop():
            return
        assert self._idle is not None
        idle = asyncio.ensure_future(self._idle.wait())
        await asyncio.wait([idle, writer], return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        self._writer = None

    # -- the writer ----------------------------------------------------------------------------

    def _ensure_writer(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A new event loop (the server's, after setup ran on another): start afresh.
            self._loop, self._writer = loop, None
            self._wakeup, self._idle = asyncio.Event(), asyncio.Event()
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_forever(), name="group-commit")

    async def _write_forever(self) -> None:
        assert self._wakeup is not None and self._idle is not None
        with on_the_loop():  # units are short: their statements skip the thread hand-off
            await self._serve()

    async def _serve(self) -> None:
        assert self._wakeup is not None and self._idle is not None
        while True:
            if not (self._urgent or self._background):
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._idle.clear()
            batch = self._take()
            if not batch:
                continue
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                for item in batch:
                    if not item.future.done():
                        item.future.cancel()
                raise
            except BaseException as exc:  # never leave a caller waiting
                log.exception("group_commit.error")
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)

    @staticmethod
    def _take_from(queue: deque[_Queued[Any]], room: int) -> list[_Queued[Any]]:
        """Up to ``room`` units from the head of ``queue``; callers that gave up are dropped."""
        taken: list[_Queued[Any]] = []
        while queue and len(taken) < room:
            item = queue.popleft()
            if not item.future.cancelled():
                taken.append(item)
        return taken

    def _take(self) -> list[_Queued[Any]]:
        """The urgent units, then background ones."""
        batch = self._take_from(self._urgent, self.max_units)
        batch += self._take_from(self._background, self.max_units - len(batch))
        return batch

    async def _commit(self, batch: list[_Queued[Any]], *, cut: bool = True) -> None:
        """Run ``batch`` in one transaction (cut short after ``max_seconds`` when ``cut``)."""
        results: list[Any] = []
        failed: _Failed | None = None
        try:
            async with self.db.session() as session:
                started = time.monotonic()
                at = 0
                while at < len(batch):
                    item = batch[at]
                    late = time.monotonic() - started > self.max_seconds
                    if cut and at and late and not item.urgent:
                        self._give_back(batch[at:])
                        batch = batch[:at]
                        break
                    try:
                        results.append(await item.unit(session))
                        await session.flush()
                    except Exception as exc:
                        failed = _Failed(at, exc)
                        raise
                    at += 1
                    if at == len(batch) and cut:
                        # Acknowledgements queued while this batch ran join it rather than
                        # wait for its commit and then one of their own (added in place, so
                        # that the writer answers them too if it is cancelled).
                        batch += self._take_from(self._urgent, self.max_units - len(batch))
        except Exception as exc:
            del exc
            self.stats.splits += 1
            if failed is None:
                # The commit itself failed: nobody to blame, so each runs on its own.
                held: set[Hashable] = set()
                for item in batch:
                    if item.key is not None and item.key in held:
                        self._refuse(item)
                    elif not await self._commit_alone(item) and item.key is not None:
                        held.add(item.key)
                return
            self._give_back(batch[failed.at + 1 :])
            if failed.at:  # wholly, so that none of them is left behind the failed one
                await self._commit(batch[: failed.at], cut=False)
            await self._commit_alone(batch[failed.at])
            return
        self._record(len(batch))
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)

    async def _commit_alone(self, item: _Queued[Any]) -> bool:
        try:
            async with self.db.session() as session:
                result = await item.unit(session)
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            if item.key is not None:
                self._hold(item.key)
            return False
        self._record(1)
        if not item.future.done():
            item.future.set_result(result)
        return True

    def _give_back(self, items: list[_Queued[Any]]) -> None:
        """Put units back at the head of their queue, in their order."""
        for item in reversed(items):
            (self._urgent if item.urgent else self._background).appendleft(item)

    def _hold(self, key: Hashable) -> None:
        """Refuse the queued units that would run after a failed unit of the same key."""
        for queue in (self._urgent, self._background):
            kept = deque(item for item in queue if item.key != key)
            for item in queue:
                if item.key == key:
                    self._refuse(item)
            queue.clear()
            queue.extend(kept)

    @staticmethod
    def _refuse(item: _Queued[Any]) -> None:
        if not item.future.done():
            item.future.set_exception(OrderHeld(f"an earlier unit of {item.key!r} failed"))

    def _record(self, size: int) -> None:
        stats = self.stats
        stats.batches += 1
        stats.units += size
        stats.largest = max(stats.largest, size)
        stats.sizes[size] = stats.sizes.get(size, 0) + 1


class Gathered(Generic[A, T]):
    """Calls of one kind that come while the writer is busy, done as one unit of its work.

    ``work(session, args)`` does what every call waiting when the writer reaches the unit
    asked for, all at once (one statement for many rows rather than one each), and returns one
    result per call, in order. A caller is answered once the transaction holding its part is
    committed; calls that come after the unit took its share wait for the next unit. When the
    unit fails, each of its calls fails with the error, and may then be done alone. A caller
    that gave up before the unit took its share is left out, as ``GroupCommit`` leaves out a
    unit whose caller gave up.
    """

    def __init__(
        self, group: GroupCommit, work: Callable[[AsyncSession, list[A]], Awaitable[list[T]]]
    ) -> None:
        self.group = group
        self._work = work
        self._waiting: list[tuple[A, asyncio.Future[T]]] = []
        self._queued = False
        self._units: set[asyncio.Task[None]] = set()

    async def run(self, arg: A) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((arg, future))
        if not self._queued:
            self._queued = True
            # A task of its own: a caller giving up must not leave the others unanswered.
            unit = asyncio.create_task(self._unit(), name="gathered-unit")
            self._units.add(unit)
            unit.add_done_callback(self._units.discard)
        return await future

    def _take(self) -> list[tuple[A, asyncio.Future[T]]]:
        taken = [(arg, future) for arg, future in self._waiting if not future.cancelled()]
        self._waiting, self._queued = [], False
        return taken

    async def _unit(self) -> None:
        taken: list[tuple[A, asyncio.Future[T]]] | None = None

        async def unit(session: AsyncSession) -> list[T]:
            nonlocal taken
            if taken is None:  # the same share when the unit runs again (a batch split)
                taken = self._take()
            return await self._work(session, [arg for arg, _ in taken])

        try:
            results = await self.group.run(unit)
        except BaseException as exc:
            for _, future in taken if taken is not None else self._take():
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        assert taken is not None
        for (_, future), result in zip(taken, results, strict=True):
            if not future.done():
                future.set_result(result)
