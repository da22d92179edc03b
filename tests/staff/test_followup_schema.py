"""Migration 0004 (request follow-up) matches the models and goes down cleanly."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import storage.followup  # noqa: F401  (registers the follow-up tables)
from bot.service import Service
from storage.migrate import upgrade
from storage.models import Base
from tests.conftest import make_config
from tests.staff.test_schema_and_cli import upgrade_to

TABLES = {"request_info", "request_reminders"}


async def test_migration_0004_matches_the_models_and_goes_down_cleanly(tmp_path: Path) -> None:
    service = Service(make_config(tmp_path))
    try:
        await upgrade(service.db.engine)

        def differences(connection: object) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})  # type: ignore[arg-type]
            return list(compare_metadata(context, Base.metadata))

        def tables(connection: object) -> set[str]:
            return set(inspect(connection).get_table_names())  # type: ignore[arg-type]

        async with service.db.engine.connect() as connection:
            assert await connection.run_sync(differences) == []
            assert await connection.run_sync(tables) >= TABLES
        await upgrade_to(service, "0003")
        async with service.db.engine.connect() as connection:
            left = await connection.run_sync(tables)
        assert not TABLES & left and "request_verifications" in left
        await upgrade(service.db.engine)
        async with service.db.engine.connect() as connection:
            assert await connection.run_sync(tables) >= TABLES
    finally:
        await service.close()
