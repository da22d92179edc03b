"""SQLite statements on the event loop, for the short transactions of the message path.

aiosqlite runs every call in a thread of its own: a statement through SQLAlchemy is four or
five calls (open a cursor, execute, fetch, close), each a hand-off to the thread and back.
For the short statements of the message path (a row by primary key, one insert) the hand-off
costs more than the statement: about half of a message's time went there. Inside
``on_the_loop()`` a connection runs its statements directly on the event loop instead. Two
things still go to the thread, so the loop never waits for the disk to flush or for another
writer (reading pages not yet in memory still happens on the loop):

* a commit (it waits for the disk: ``synchronous=FULL``), and
* a statement that found the database locked by another process or connection: the loop's
  attempt never waits (``busy_timeout`` is 0 there), and the statement is tried again in the
  thread, which waits for the lock as usual.

Outside ``on_the_loop()`` (reports, exports, retention: statements that may scan a lot)
everything goes through the thread as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite

# How long a statement sent to the thread waits for another writer's lock.
LOCK_WAIT_MS = 10_000

_ON_THE_LOOP: ContextVar[bool] = ContextVar("tawasul_sqlite_on_the_loop", default=False)


@contextmanager
def on_the_loop() -> Iterator[None]:
    """Run this task's SQLite statements on the event loop (short statements only)."""
    token = _ON_THE_LOOP.set(True)
    try:
        yield
    finally:
        _ON_THE_LOOP.reset(token)


def statements_on_the_loop() -> bool:
    """Whether this task is inside ``on_the_loop()``."""
    return _ON_THE_LOOP.get()


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc)


def _waiting(conn: sqlite3.Connection, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in the thread, waiting for another writer's lock as long as allowed."""
    conn.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")
    try:
        return fn()
    finally:
        with suppress(sqlite3.Error):  # never hide the error ``fn`` raised
            conn.execute("PRAGMA busy_timeout=0")


class LoopConnection(aiosqlite.Connection):
    """An aiosqlite connection that runs short statements on the loop when asked to."""

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        conn = self._connection
        call = partial(fn, *args, **kwargs)
        if _ON_THE_LOOP.get() and fn != conn.commit and fn != conn.close:
            changes = conn.total_changes
            try:
                return call()
            except sqlite3.OperationalError as exc:
                # Locked by someone else: wait for it in the thread, not on the loop; but only
                # a statement that changed nothing yet may run again (in WAL mode the lock is
                # taken before any change, so this always holds there).
                if not _busy(exc) or conn.total_changes != changes:
                    raise
        # aiosqlite's own method is untyped.
        if fn == conn.close:
            return await super()._execute(call)  # type: ignore[no-untyped-call]
        return await super()._execute(_waiting, conn, call)  # type: ignore[no-untyped-call]


def loop_connection(path: Path) -> LoopConnection:
    """What SQLAlchemy's ``async_creator`` hands to the aiosqlite dialect."""

    def connector() -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=0")
        return conn

    connection = LoopConnection(connector, iter_chunk_size=64)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
    return connection
