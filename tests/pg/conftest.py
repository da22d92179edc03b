from __future__ import annotations

from tests.pg.fixtures import database_url, pg_cluster, pg_url  # noqa: F401
