"""Opening the database: one async engine, SQLite tuned for a single writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.crypto import Keyring, install
from storage.private import private_file, private_folder
from storage.sqlite_loop import (
    LOCK_WAIT_MS,
    loop_connection,
    on_the_loop,
    statements_on_the_loop,
)

# The folder of the default SQLite database: made when missing (a first `make run`); any
# other folder must exist, so that a typo in the path is not a new, empty database.
DEFAULT_FOLDER = Path("var")


class DatabaseFolderMissing(ValueError):
    """The folder a SQLite database is to be in does not exist; ``str()`` says so."""


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _owner_only(path: Path) -> Callable[[Any, Any], None]:
    """On each new connection: the database file and its journals readable by their owner
    only (SQLite creates the file with the umask's rights, and its journals with the
    file's)."""

    def narrow(_connection: Any, _record: Any) -> None:
        for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            private_file(name)

    return narrow


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers work while one writer commits; FULL makes every acknowledged
    # message survive a power cut (NORMAL could lose the last commits).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# PostgreSQL: seconds to open a connection (TCP and the start-up exchange) before giving up;
# [database] connect_timeout_seconds.
CONNECT_TIMEOUT = 10.0


class Database:
    """The engine, a session factory and, on SQLite, the single-writer lock."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        keyring: Keyring | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.url = url
        path = sqlite_path(url)
        if path is not None and not path.parent.is_dir():
            if path.parent != DEFAULT_FOLDER:
                raise DatabaseFolderMissing(
                    f"{path.parent} does not exist, so the SQLite database {path} cannot be "
                    "made there; correct the path, or create the folder first"
                )
            private_folder(path.parent)
        self.is_sqlite = make_url(url).drivername.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        # Whether short statements can run on the event loop (connections of our own).
        self._loop_connections = False
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
            # asyncpg's own is a minute: a host that drops packets would hold every command
            # and the server's start that long before saying the database cannot be reached.
            kwargs["connect_args"] = {"timeout": connect_timeout}
        elif path is not None and not make_url(url).query:
            # Short statements may run on the event loop (storage.sqlite_loop); waiting for
            # another writer's lock (up to 10 s) is done in the connection's thread. (A URL
            # with options such as ?mode=ro keeps aiosqlite's own connection, which reads them.)
            file = path
            kwargs["async_creator"] = lambda: loop_connection(file)
            self._loop_connections = True
        else:
            # How long a writer waits for another's lock.
            kwargs["connect_args"] = {"timeout": LOCK_WAIT_MS / 1000}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            if path is not None:
                event.listen(self.engine.sync_engine, "connect", _owner_only(path))
        if keyring is not None:
            # Personal columns encrypt and decrypt with it (storage.crypto).
            install(keyring, self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite allows one writer; several tasks writing at once only busy-wait.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def session(
        self, *, write: bool = True, short: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, committed on success and rolled back on error.

        ``short``: only quick statements (rows by key, small inserts); on SQLite they run on
        the event loop rather than through the connection's thread (storage.sqlite_loop).
        A short read ends with a rollback, which SQLite does on the loop too, rather than a
        commit, which would go to the connection's thread and back for nothing to write.
        """
        if short:
            with on_the_loop():
                if write:
                    async with self.session() as session:
                        yield session
                    return
                async with self._transaction(commit=False) as session:
                    yield session
            return
        if write and self._write_lock is not None:
            async with self._write_lock, self._transaction() as session:
                yield session
        else:
            async with self._transaction() as session:
                yield session

    def _closes_in_place(self) -> bool:
        """Whether closing a session or connection of this task waits for nothing: SQLite with
        its statements on the loop, where the pool's rollback runs too."""
        return self._loop_connections and statements_on_the_loop()

    @asynccontextmanager
    async def _transaction(self, *, commit: bool = True) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, committed at the end; without ``commit`` (a read)
        rolled back when the session is closed.

        SQLAlchemy's own ``async with`` closes a session in a task of its own, so that a
        cancellation cannot leave the closing half done; the task costs a pass of the event
        loop (several milliseconds when the server is busy) at the end of every transaction,
        the writer's included. Where closing waits for nothing (``_closes_in_place``), no
        cancellation can come in the middle of it, and the session is closed in place."""
        if not self._closes_in_place():
            async with self.sessions() as session, self._ending(session, commit):
                yield session
            return
        session = self.sessions()
        try:
            async with self._ending(session, commit):
                yield session
        finally:
            await session.close()

    @staticmethod
    def _ending(session: AsyncSession, commit: bool) -> AbstractAsyncContextManager[Any]:
        """What ends the transaction: its commit, or nothing (closing rolls it back)."""
        return session.begin() if commit else nullcontext()

    @asynccontextmanager
    async def quick_read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one short read by key, on the event loop on SQLite.

        No session and nothing to commit: the connection goes back to the pool with a
        rollback, which SQLite does on the loop, where a commit would go to the
        connection's thread and back (``storage.sqlite_loop``).
        """
        with on_the_loop():
            if not self._closes_in_place():
                async with self.engine.connect() as connection:
                    yield connection
                return
            connection = await self.engine.connect().start()
            try:
                yield connection
            finally:
                await connection.close()

    async def dispose(self) -> None:
        await self.engine.dispose()
