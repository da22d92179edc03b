"""Short SQLite statements run on the event loop; waiting for a lock never blocks the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import event, text

from storage.db import Database


def _with_thread_function(db: Database) -> None:
    @event.listens_for(db.engine.sync_engine, "connect")
    def register(dbapi_connection: object, _record: object) -> None:
        # The id of the thread that runs the statement calling it.
        dbapi_connection.create_function(  # type: ignore[attr-defined]
            "runner", 0, threading.get_ident
        )


async def test_short_sessions_run_on_the_loop_and_others_in_the_thread(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    _with_thread_function(db)
    try:
        async with db.session(short=True) as session:
            on_loop = await session.scalar(text("SELECT runner()"))
        async with db.session() as session:
            threaded = await session.scalar(text("SELECT runner()"))
    finally:
        await db.dispose()
    assert on_loop == threading.get_ident()
    assert threaded != threading.get_ident()


async def test_a_lock_held_elsewhere_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    async with db.session() as session:
        await session.execute(text("CREATE TABLE t (n INTEGER)"))

    # Another process's writer (a plain connection here) holds the write lock for 0.6 s.
    other = sqlite3.connect(path, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.6, other.commit)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(ticker())
    release.start()
    started = time.monotonic()
    try:
        async with db.session(short=True) as session:
            await session.execute(text("INSERT INTO t VALUES (2)"))
        waited = time.monotonic() - started
        async with db.session(short=True) as session:
            rows = list(await session.scalars(text("SELECT n FROM t ORDER BY n")))
    finally:
        beat.cancel()
        release.join()
        other.close()
        await db.dispose()
    assert rows == [1, 2]  # nothing lost: the statement ran once the lock was free
    assert waited >= 0.5
    # The loop went on while the statement waited: a blocked loop would tick about once.
    assert ticks >= 20


async def test_errors_other_than_a_lock_are_raised_at_once(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with db.session(short=True) as session:
            try:
                await session.execute(text("SELECT * FROM missing"))
            except Exception as exc:  # SQLAlchemy wraps the driver's error
                assert "no such table" in str(exc)
            else:
                raise AssertionError("a missing table must raise")
    finally:
        await db.dispose()
