"""Fixtures: one PostgreSQL cluster per test session, a fresh database per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg.cluster import Cluster, available, wait_ready

_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    if not available():
        pytest.fail("PostgreSQL 15 binaries are missing; run scripts/ensure-test-peers")
    cluster = Cluster()
    cluster.start()
    wait_ready(cluster)
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """The URL of a new, empty database on the shared cluster."""
    return pg_cluster.create_database(f"t{next(_names)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test over SQLite and over PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'tawasul.db'}"
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"t{next(_names)}")
