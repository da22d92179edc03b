"""Each migration matches the models at the head, goes down cleanly and comes back up."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import storage.followup
import storage.staff_models
import storage.verification  # noqa: F401  (registers the status-check table)
from bot.service import Service
from storage.migrate import alembic_config, upgrade
from storage.models import Base
from tests.conftest import make_config

# What each revision adds: tables, "table.column" for columns added to existing tables, and
# "index:name" for indexes.
ADDED = {
    "0003": {
        "staff_users",
        "staff_sessions",
        "staff_login_attempts",
        "staff_settings",
        "canned_answers",
        "contact_logs",
        "conversation_handlings",
        "request_verifications",
    },
    "0004": {"request_info", "request_reminders"},
    "0005": {"status_check_failures"},
    "0006": {
        "beneficiaries.phone_hash",
        "beneficiaries.national_id_hash",
        "identities.address_hash",
    },
    "0007": {"index:ix_messages_identity"},
    "0009": {"index:ix_staff_login_attempts_address"},
    "0010": {"outbox.lease"},
    "0011": {"provider_reports", "index:ix_provider_reports_provider_id"},
}


def _schema(connection: object) -> set[str]:
    inspector = inspect(connection)
    names: set[str] = set()
    for table in inspector.get_table_names():
        names.add(table)
        names |= {f"{table}.{column['name']}" for column in inspector.get_columns(table)}
        names |= {f"index:{index['name']}" for index in inspector.get_indexes(table)}
    return names


def _differences(connection: object) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})  # type: ignore[arg-type]
    return list(compare_metadata(context, Base.metadata))


async def downgrade(service: Service, revision: str) -> None:
    def down(connection: object) -> None:
        config = alembic_config(str(service.db.engine.url))
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with service.db.engine.begin() as connection:
        await connection.run_sync(down)


@pytest.mark.parametrize("revision", sorted(ADDED))
async def test_migration_matches_the_models_goes_down_and_up(tmp_path: Path, revision: str) -> None:
    service = Service(make_config(tmp_path))
    added = ADDED[revision]
    try:
        await upgrade(service.db.engine)
        async with service.db.engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
            assert await connection.run_sync(_schema) >= added
        await downgrade(service, f"{int(revision) - 1:04d}")
        async with service.db.engine.connect() as connection:
            left = await connection.run_sync(_schema)
        assert not added & left
        assert "conversations" in left and "messages.text" in left
        await upgrade(service.db.engine)
        async with service.db.engine.connect() as connection:
            assert await connection.run_sync(_schema) >= added
            assert await connection.run_sync(_differences) == []
    finally:
        await service.close()


def test_the_latest_migration_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """`/readyz` compares the database with the latest migration at every probe: the
    scripts are read once, not at each probe."""
    from alembic.script import ScriptDirectory

    from storage.migrate import head_revision

    head = head_revision()
    assert head is not None

    def read_again(*args: object, **kwargs: object) -> None:
        pytest.fail("the migration scripts were read again")

    monkeypatch.setattr(ScriptDirectory, "from_config", read_again)
    assert head_revision() == head
