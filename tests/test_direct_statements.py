"""Statements run straight on SQLite's connection read and write what SQLAlchemy would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError, StatementError

from storage.db import Database
from storage.direct import Rows, direct, execute
from storage.migrate import upgrade
from storage.models import Beneficiary, Conversation, Message, OutboxItem
from tests.conftest import TEST_KEYRING, statements_seen

C, M, OUT = Conversation.__table__, Message.__table__, OutboxItem.__table__
AT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)

_CONVERSATION = direct(
    select(C.c.id, C.c.status, C.c.state, C.c.created_at).where(C.c.id == bindparam("id"))
)
_MESSAGE = direct(insert(M).returning(M.c.id, M.c.text, M.c.payload, M.c.created_at))
_OUTBOX = direct(insert(OUT).returning(OUT.c.id))
_OPEN = direct(select(C.c.id).where(C.c.id == bindparam("id"), C.c.status.in_(["bot", "queued"])))
_STATUS = direct(select(C.c.status).where(C.c.id == bindparam("id")))
_UPDATE_STATUS = direct(
    C.update().where(C.c.id == bindparam("row")).values(status=bindparam("new"))
)
_BY_STATUS = direct(
    select(C.c.id).where(C.c.id == bindparam("id"), C.c.status == bindparam("status"))
)
_SOME = direct(select(C.c.id).where(C.c.id.in_(bindparam("ids", expanding=True))))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", keyring=TEST_KEYRING)
    await upgrade(database.engine)
    yield database
    await database.dispose()


async def conversation(db: Database) -> int:
    """A new conversation's id (its beneficiary's is the same number here: one each)."""
    async with db.session() as s:
        beneficiary = Beneficiary()
        s.add(beneficiary)
        await s.flush()
        row = Conversation(
            beneficiary_id=beneficiary.id, state={"lang": "ar", "draft": {"name": "سارة"}}
        )
        s.add(row)
        await s.flush()
        return row.id


async def test_a_row_read_directly_is_the_row_sqlalchemy_reads(db: Database) -> None:
    """Encrypted JSON, dates and plain columns come back processed, by name and by place."""
    conversation_id = await conversation(db)
    async with db.session() as s:
        direct_rows = await execute(s, _CONVERSATION, {"id": conversation_id})
        through = (await s.execute(_CONVERSATION, {"id": conversation_id})).first()
    assert isinstance(direct_rows, Rows)  # it did run directly
    row = direct_rows.first()
    assert tuple(row) == tuple(through)
    assert row.state == {"lang": "ar", "draft": {"name": "سارة"}}
    assert row.status == "bot" and isinstance(row.created_at, datetime)
    async with db.session() as s:
        assert (await execute(s, _CONVERSATION, {"id": conversation_id + 1})).first() is None


async def test_a_row_written_directly_is_stored_as_sqlalchemy_stores_it(db: Database) -> None:
    """Values go through the columns' processors (encrypted text and JSON, dates), several
    rows return their ids in order, and columns left out get their Python-side defaults."""
    conversation_id = await conversation(db)
    rows = [
        {
            "conversation_id": conversation_id,
            "beneficiary_id": conversation_id,
            "direction": "out",
            "channel": "whatsapp",
            "text": f"رد {n}",
            "payload": {"n": n},
            "created_at": AT,
        }
        for n in range(3)
    ]
    async with db.session() as s:
        written = await execute(s, _MESSAGE, rows)
        ids = [row.id for row in written]
        assert isinstance(written, Rows) and ids == sorted(ids) and len(set(ids)) == 3
        assert [row.text for row in written] == ["رد 0", "رد 1", "رد 2"]
        outbox_id = (
            await execute(
                s,
                _OUTBOX,
                {
                    "message_id": ids[0],
                    "conversation_id": conversation_id,
                    "channel": "sms",
                    "address": "+966500000001",
                },
            )
        ).scalar()
    async with db.session(write=False) as s:
        stored = [await s.get(Message, n) for n in ids]
        item = await s.get(OutboxItem, outbox_id)
        clear = (await s.execute(select(M.c.text).where(M.c.id == ids[0]))).scalar()
    assert [(m.text, m.payload, m.created_at) for m in stored if m] == [
        (f"رد {n}", {"n": n}, AT) for n in range(3)
    ]
    assert clear == "رد 0"  # read back through the type: encrypted on disk, below
    async with db.engine.connect() as raw:
        on_disk = (
            await raw.exec_driver_sql("SELECT text FROM messages WHERE id = ?", (ids[0],))
        ).scalar()
    assert "رد" not in on_disk
    assert item is not None
    assert (item.status, item.kind, item.attempts) == ("pending", "reply", 0)
    assert item.created_at is not None and item.next_attempt_at is not None


async def test_a_conflict_is_sqlalchemys_integrity_error(db: Database) -> None:
    """The repository tells a taken key by SQLAlchemy's error, directly or not."""
    with pytest.raises(IntegrityError):
        async with db.session() as s:
            await execute(
                s, _MESSAGE, {"conversation_id": 999_999, "beneficiary_id": 1, "direction": "in"}
            )


async def test_listeners_of_statements_see_those_run_directly(db: Database) -> None:
    """What counts statements (tests, benches) still sees them."""
    conversation_id = await conversation(db)
    with statements_seen(db.engine) as seen:
        async with db.session() as s:
            await execute(s, _CONVERSATION, {"id": conversation_id})
    assert len(seen) == 1 and seen[0].startswith("SELECT conversations.id")


async def test_a_list_written_in_the_statement_runs_directly(db: Database) -> None:
    """``status IN ('bot', 'queued')`` is the same at every execution: rendered once."""
    conversation_id = await conversation(db)
    async with db.session() as s:
        found = await execute(s, _OPEN, {"id": conversation_id})
        assert isinstance(found, Rows) and found.scalar() == conversation_id
        await s.execute(C.update().values(status="closed"))
        assert (await execute(s, _OPEN, {"id": conversation_id})).first() is None


async def test_a_list_parameter_goes_through_sqlalchemy(db: Database) -> None:
    """An IN list is rendered anew at each execution: SQLAlchemy runs it."""
    ids = [await conversation(db) for _ in range(3)]
    async with db.session() as s:
        result = await execute(s, _SOME, {"ids": ids[:2]})
        assert not isinstance(result, Rows)
        assert sorted(result.scalars()) == ids[:2]


def test_a_statement_on_mapped_classes_is_refused() -> None:
    """Through the session an ORM statement flushes and loads objects: it must not skip it."""
    with pytest.raises(ValueError, match="Core statements"):
        direct(select(Conversation).where(Conversation.id == bindparam("id")))


async def test_what_the_session_holds_unwritten_is_written_before(db: Database) -> None:
    """The session writes its pending changes before a Core statement (autoflush); so does
    the direct path, so that the statement reads them."""
    conversation_id = await conversation(db)
    async with db.session() as s:
        row = await s.get(Conversation, conversation_id)
        assert row is not None
        row.status = "queued"  # changed, not written yet
        assert (await execute(s, _STATUS, {"id": conversation_id})).scalar() == "queued"


async def test_a_missing_parameter_is_refused_as_sqlalchemy_refuses_it(db: Database) -> None:
    """A value left out is an error, not a NULL that quietly finds nothing."""
    conversation_id = await conversation(db)
    async with db.session() as s:
        with pytest.raises(StatementError, match="A value is required"):
            await execute(s, _BY_STATUS, {"id": conversation_id})


async def test_a_value_a_column_refuses_is_a_statement_error(db: Database) -> None:
    """A date without its time zone, refused by the column's type: SQLAlchemy's error."""
    conversation_id = await conversation(db)
    row = {
        "conversation_id": conversation_id,
        "beneficiary_id": conversation_id,
        "direction": "out",
        "created_at": datetime(2026, 1, 1),
    }
    async with db.session() as s:
        with pytest.raises(StatementError):
            await execute(s, _MESSAGE, row)


async def test_a_session_running_one_transaction_after_another_uses_each_ones_connection(
    db: Database,
) -> None:
    """The connection is kept for the transaction it belongs to, not for the session."""
    conversation_id = await conversation(db)
    async with db.sessions() as s:
        async with s.begin():
            assert (await execute(s, _STATUS, {"id": conversation_id})).scalar() == "bot"
            await s.execute(C.update().values(status="queued"))
        async with db.engine.connect() as other:  # what was committed is there for all
            assert (
                await other.execute(select(C.c.status).where(C.c.id == conversation_id))
            ).scalar() == "queued"
        async with s.begin():
            await execute(s, _UPDATE_STATUS, {"row": conversation_id, "new": "closed"})
            await s.rollback()
        async with s.begin():
            assert (await execute(s, _STATUS, {"id": conversation_id})).scalar() == "queued"
