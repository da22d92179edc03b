"""The migration matches the models; `tawasul staff` manages accounts from the shell."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import storage.staff_models  # noqa: F401  (registers the console's tables)
from bot.service import Service
from storage.migrate import upgrade
from storage.models import Base
from tests.conftest import make_config, run_cli

TABLES = {
    "staff_users",
    "staff_sessions",
    "staff_login_attempts",
    "staff_settings",
    "canned_answers",
    "contact_logs",
    "conversation_handlings",
    "request_verifications",
}


async def test_migration_0003_matches_the_models_and_goes_down_cleanly(tmp_path: Path) -> None:
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
        await upgrade_to(service, "0002")
        async with service.db.engine.connect() as connection:
            assert not TABLES & await connection.run_sync(tables)
        await upgrade(service.db.engine)
        async with service.db.engine.connect() as connection:
            assert await connection.run_sync(tables) >= TABLES
    finally:
        await service.close()


async def upgrade_to(service: Service, revision: str) -> None:
    from alembic import command

    from storage.migrate import alembic_config

    def down(connection: object) -> None:
        config = alembic_config(str(service.db.engine.url))
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with service.db.engine.begin() as connection:
        await connection.run_sync(down)


def test_staff_commands(tmp_path: Path) -> None:
    run_cli(tmp_path, "db", "upgrade")
    added = run_cli(
        tmp_path,
        "staff",
        "add",
        "Hind@Example.org",
        "--role",
        "supervisor",
        input="long enough pw\n",
    )
    assert "hind@example.org" in added.stdout
    again = run_cli(
        tmp_path,
        "staff",
        "add",
        "hind@example.org",
        "--role",
        "agent",
        input="long enough pw\n",
        check=False,
    )
    assert again.returncode != 0 and "already" in again.stderr
    short = run_cli(
        tmp_path, "staff", "add", "x@example.org", "--role", "agent", input="short\n", check=False
    )
    assert short.returncode != 0 and "10 characters" in short.stderr
    bad_role = run_cli(
        tmp_path,
        "staff",
        "add",
        "y@example.org",
        "--role",
        "boss",
        input="long enough pw\n",
        check=False,
    )
    assert bad_role.returncode != 0
    listed = run_cli(tmp_path, "staff", "list").stdout
    assert "hind@example.org" in listed and "supervisor" in listed and "active" in listed
    assert "x@example.org" not in listed
    run_cli(tmp_path, "staff", "disable", "hind@example.org")
    assert "disabled" in run_cli(tmp_path, "staff", "list").stdout
    missing = run_cli(tmp_path, "staff", "disable", "nobody@example.org", check=False)
    assert missing.returncode != 0
    run_cli(tmp_path, "staff", "enable", "hind@example.org")
    run_cli(tmp_path, "staff", "password", "hind@example.org", input="another long pw\n")
    assert " active" in run_cli(tmp_path, "staff", "list").stdout


def test_staff_commands_need_a_migrated_database(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "staff", "list", check=False)
    assert result.returncode != 0 and "db upgrade" in result.stderr
