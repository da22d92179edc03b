"""Bringing a database's schema up to date with Alembic."""

from __future__ import annotations

from functools import cache

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "storage:migrations")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate to ``revision`` over the given engine (the app's own, so pragmas apply)."""

    def _upgrade(connection: object) -> None:
        config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def _current(connection: object) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()  # type: ignore[arg-type]

    async with engine.connect() as connection:
        return await connection.run_sync(_current)


@cache
def head_revision() -> str | None:
    """The latest migration this code knows. Read once: the scripts do not change while the
    process runs, and ``/readyz`` asks at every probe (reading them costs about 6 ms)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
