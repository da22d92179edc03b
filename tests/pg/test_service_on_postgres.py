"""The engine dialogues, the outbox and identity tests, run again over PostgreSQL.

The test functions are the SQLite suite's own; only the ``service`` fixture differs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.service import Service
from storage.migrate import upgrade
from tests.conftest import make_config
from tests.test_engine import *  # noqa: F403
from tests.test_identities import *  # noqa: F403
from tests.test_outbox import *  # noqa: F403


@pytest.fixture
async def service(tmp_path: Path, pg_url: str) -> AsyncIterator[Service]:
    svc = Service(make_config(tmp_path, database={"url": pg_url}))
    await upgrade(svc.db.engine)
    yield svc
    await svc.close()
