"""Short SQLite statements run on the event loop; waiting for a lock never blocks the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.ext.asyncio.base as sqlalchemy_async_base
import sqlalchemy.ext.asyncio.engine as sqlalchemy_async_engine
import sqlalchemy.ext.asyncio.session as sqlalchemy_async_session
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


async def test_a_short_session_is_closed_in_place_and_leaves_the_pool_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy closes a session in a task of its own, a pass of the event loop at the end of
    every transaction. A session on the loop waits for nothing when it closes, so it is closed
    in place; its connection goes back to the pool all the same, after a commit, after an
    error, and from a quick read. Other sessions keep SQLAlchemy's way."""
    closing_tasks: list[object] = []
    run_to_completion = sqlalchemy_async_base._run_to_completion

    async def counted(coro: Any) -> Any:
        closing_tasks.append(coro)
        return await run_to_completion(coro)

    monkeypatch.setattr(sqlalchemy_async_base, "_run_to_completion", counted)
    for module in (sqlalchemy_async_session, sqlalchemy_async_engine):
        monkeypatch.setattr(module, "_run_to_completion", counted)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with db.session(short=True) as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(ValueError, match="a fault"):
            async with db.session(short=True) as session:
                await session.execute(text("INSERT INTO t VALUES (2)"))
                raise ValueError("a fault")
        async with db.quick_read() as connection:
            kept = list(await connection.scalars(text("SELECT n FROM t")))
        assert kept == [1]  # committed, and the failed one rolled back
        assert closing_tasks == []
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        async with db.session() as session:  # through the thread: SQLAlchemy's own exit
            await session.execute(text("SELECT 1"))
        assert len(closing_tasks) == 1
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await db.dispose()


async def test_a_short_read_ends_with_a_rollback_on_the_loop(tmp_path: Path) -> None:
    """A commit goes to the connection's thread and back; a short read has nothing to commit,
    so it ends with a rollback, which stays on the loop: nothing of it runs in the thread.
    Nothing written in it is kept."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    ends: list[str] = []
    off_the_loop: list[str] = []  # statements SQLite ran in another thread than the test's
    loop_thread = threading.get_ident()

    @event.listens_for(db.engine.sync_engine, "connect")
    def trace(dbapi_connection: Any, _record: object) -> None:
        def seen(sql: str) -> None:
            if threading.get_ident() != loop_thread:
                off_the_loop.append(sql)

        dbapi_connection.driver_connection._connection.set_trace_callback(seen)

    event.listen(db.engine.sync_engine, "commit", lambda _conn: ends.append("commit"))
    event.listen(db.engine.sync_engine, "rollback", lambda _conn: ends.append("rollback"))
    try:
        async with db.session(short=True) as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        assert ends == ["commit"]
        assert off_the_loop  # the commit, in the thread
        ends.clear()
        off_the_loop.clear()
        async with db.session(write=False, short=True) as session:
            assert await session.scalar(text("SELECT count(*) FROM t")) == 0
            await session.execute(text("INSERT INTO t VALUES (1)"))  # a mistake: not kept
        assert ends == ["rollback"]
        assert off_the_loop == []
        async with db.session(write=False) as session:  # a long read keeps its commit
            assert await session.scalar(text("SELECT count(*) FROM t")) == 0
        assert ends == ["rollback", "commit"]
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await db.dispose()
