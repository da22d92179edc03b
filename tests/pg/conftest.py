from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.service import Service
from storage.migrate import upgrade
from tests.conftest import make_config
from tests.pg.fixtures import database_url, pg_cluster, pg_url  # noqa: F401


@pytest.fixture
async def service(tmp_path: Path, pg_url: str) -> AsyncIterator[Service]:  # noqa: F811
    """The suite's ``service``, on a fresh PostgreSQL database: the tests written for SQLite
    run here on PostgreSQL as they are."""
    svc = Service(make_config(tmp_path, database={"url": pg_url}))
    await upgrade(svc.db.engine)
    yield svc
    await svc.close()
