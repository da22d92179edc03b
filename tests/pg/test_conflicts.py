"""A transaction PostgreSQL rolls back to break a deadlock is run again, not failed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.group import CONFLICT_ATTEMPTS, GroupCommit
from storage.migrate import upgrade
from storage.models import ChannelCursor
from storage.repository import Tx


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    database = Database(pg_url)
    await upgrade(database.engine)
    async with database.session() as session:
        for name in ("a", "b"):
            await Tx(session).set_cursor(name, {"by": None})
    yield database
    await database.dispose()


async def test_two_units_that_deadlock_both_commit(db: Database) -> None:
    """Each unit updates one row, then the other's: PostgreSQL ends one of the two
    transactions to break the deadlock, and that unit runs again once the other has
    committed. Neither caller sees the deadlock."""
    group = GroupCommit(db)
    first_written = {"a": asyncio.Event(), "b": asyncio.Event()}
    runs = {"a": 0, "b": 0}

    def crossing(mine: str, theirs: str) -> Callable[[AsyncSession], Awaitable[str]]:
        async def unit(session: AsyncSession) -> str:
            runs[mine] += 1
            tx = Tx(session)
            await tx.set_cursor(mine, {"by": mine})
            first_written[mine].set()
            await first_written[theirs].wait()
            await tx.set_cursor(theirs, {"by": mine})
            return mine

        return unit

    done = await asyncio.wait_for(
        asyncio.gather(group.run(crossing("a", "b")), group.run(crossing("b", "a"))), 30
    )
    assert done == ["a", "b"]
    assert sorted(runs.values()) == [1, 2]  # the one PostgreSQL ended ran again, once
    assert group.stats.conflicts == 1
    async with db.session(write=False) as session:
        values = {c.name: c.value["by"] for c in await session.scalars(select(ChannelCursor))}
    # The unit run again committed last, over both rows.
    again = "a" if runs["a"] == 2 else "b"
    assert values == {"a": again, "b": again}


def _conflict_error(sqlstate: str) -> DBAPIError:
    class Orig(Exception):
        pass

    orig = Orig("conflict")
    orig.sqlstate = sqlstate  # type: ignore[attr-defined]
    return DBAPIError("UPDATE ...", {}, orig)


async def test_a_lasting_conflict_is_raised_after_the_attempts(db: Database) -> None:
    group = GroupCommit(db)
    runs = 0

    async def unit(session: AsyncSession) -> None:
        nonlocal runs
        runs += 1
        await Tx(session).set_cursor("a", {"by": runs})
        raise _conflict_error("40001")

    with pytest.raises(DBAPIError):
        await asyncio.wait_for(group.run(unit), 10)
    assert runs == CONFLICT_ATTEMPTS
    async with db.session(write=False) as session:
        assert (await Tx(session).cursor("a")) == {"by": None}  # nothing of any run kept


@pytest.mark.parametrize("error", [ValueError("the unit's own"), _conflict_error("23505")])
async def test_other_failures_are_not_run_again(db: Database, error: Exception) -> None:
    group = GroupCommit(db)
    runs = 0

    async def unit(session: AsyncSession) -> None:
        nonlocal runs
        runs += 1
        raise error

    with pytest.raises(type(error)):
        await group.run(unit)
    assert runs == 1
    assert group.stats.conflicts == 0
