"""`tawasul db backup` while the database is being written, and `tawasul db restore`."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from storage.backup import (
    BackupError,
    backup,
    inspect,
    known_revisions,
    postgres_commands,
    restore_sqlite,
)
from tests.conftest import cli_env, run_cli

ROWS = 40_000


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database at the current schema, made once by `tawasul db upgrade`."""
    tmp = tmp_path_factory.mktemp("migrated")
    run_cli(tmp, "db", "upgrade")
    return tmp / "tawasul.db"


def sql(database: Path, statement: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(database)) as connection, connection:
        return connection.execute(statement).fetchall()


def fill(database: Path) -> None:
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.executemany(
            "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
            [
                ("2026-01-01 00:00:00", "seed", "seed", str(i), "{}" + " " * 400)
                for i in range(ROWS)
            ],
        )


def writer(
    database: Path, stop: threading.Event, under_way: threading.Event, batches: list[int]
) -> None:
    """Like the server: commit after commit, each adding a pair of rows that belong together."""
    connection = sqlite3.connect(database, timeout=10, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    try:
        batch = 0
        while not stop.is_set():
            batch += 1
            connection.execute("BEGIN IMMEDIATE")
            for half in ("a", "b"):
                connection.execute(
                    "INSERT INTO audit_log (at, actor, action, subject, detail) "
                    "VALUES ('2026-01-01 00:00:00', 'writer', ?, ?, '{}')",
                    (half, f"batch-{batch}"),
                )
            connection.execute("COMMIT")
            batches.append(batch)
            if batch == 20:
                under_way.set()
    finally:
        connection.close()


async def test_a_backup_taken_during_writes_is_whole_and_consistent(
    tmp_path: Path, migrated: Path
) -> None:
    database = tmp_path / "tawasul.db"
    shutil.copy(migrated, database)
    fill(database)
    stop, under_way, batches = threading.Event(), threading.Event(), list[int]()
    thread = threading.Thread(target=writer, args=(database, stop, under_way, batches))
    thread.start()
    try:
        assert await asyncio.to_thread(under_way.wait, 10)
        before = len(batches)
        snapshot = await backup(database, tmp_path / "copy.db", known_revisions())
        during = len(batches) - before
    finally:
        stop.set()
        thread.join(10)
    assert during > 0, "the server could not write while the backup ran"
    assert snapshot.revision in known_revisions()
    with closing(sqlite3.connect(tmp_path / "copy.db")) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        seeded = copy.execute("SELECT count(*) FROM audit_log WHERE actor='seed'").fetchone()
        halves = copy.execute(
            "SELECT subject, count(*) FROM audit_log WHERE actor='writer' GROUP BY subject"
        ).fetchall()
    assert seeded == (ROWS,)
    assert halves and all(n == 2 for _, n in halves)  # never half a transaction
    copied = sorted(int(s.removeprefix("batch-")) for s, _ in halves)
    assert copied == list(range(1, len(copied) + 1))  # a prefix of the commits, no gaps
    assert not (tmp_path / "copy.db-wal").exists()


def test_backup_and_restore_commands(tmp_path: Path, migrated: Path) -> None:
    database = tmp_path / "tawasul.db"
    shutil.copy(migrated, database)
    done = run_cli(tmp_path, "db", "backup", "backups/monday.db")
    assert "Backed up to backups/monday.db" in done.stdout
    assert "keep the keys" in done.stdout  # without them the copy cannot be read
    again = run_cli(tmp_path, "db", "backup", "backups/monday.db", check=False)
    assert again.returncode == 1 and "backups/monday.db exists" in again.stderr
    sql(
        database,
        "INSERT INTO audit_log (at, actor, action, subject, detail) "
        "VALUES ('2026-01-02', 'x', 'later', '', '{}')",
    )
    # A server holds the database open: its WAL file is there, so restore refuses.
    with closing(sqlite3.connect(database)) as server:
        server.execute("PRAGMA journal_mode=WAL")
        server.execute("SELECT count(*) FROM audit_log").fetchone()
        refused = run_cli(tmp_path, "db", "restore", "backups/monday.db", check=False)
        assert refused.returncode == 1 and "--force" in refused.stderr
    restored = run_cli(tmp_path, "db", "restore", "backups/monday.db")
    assert "before-restore-" in restored.stdout
    assert sql(database, "SELECT count(*) FROM audit_log") == [(0,)]
    assert sql(database, "PRAGMA integrity_check") == [("ok",)]
    kept = next(tmp_path.glob("tawasul.db.before-restore-*"))
    assert sql(kept, "SELECT count(*) FROM audit_log") == [(1,)]


def test_restore_refuses_what_is_not_a_tawasul_database(tmp_path: Path, migrated: Path) -> None:
    (tmp_path / "notes.db").write_bytes(b"not a database at all" * 100)
    result = run_cli(tmp_path, "db", "restore", "notes.db", check=False)
    assert result.returncode == 1 and "not a SQLite database" in result.stderr
    assert not (tmp_path / "tawasul.db").exists()
    sql(tmp_path / "other.db", "CREATE TABLE t (x)")
    with pytest.raises(BackupError, match="not a Tawasul database"):
        restore_sqlite(tmp_path / "other.db", tmp_path / "tawasul.db", known_revisions())
    future = tmp_path / "future.db"
    shutil.copy(migrated, future)
    sql(future, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(BackupError, match="unknown to this version"):
        inspect(future, known_revisions())
    assert not (tmp_path / "tawasul.db").exists()


def test_postgresql_gets_the_pg_dump_commands(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://tawasul:s3cret@db.internal:5432/tawasul"
    env = {**cli_env(tmp_path), "TAWASUL_DATABASE_URL": url}
    result = run_cli(tmp_path, "db", "backup", "/srv/backup.dump", env=env, check=False)
    assert result.returncode == 1
    assert "pg_dump --format=custom" in result.stderr and "pg_restore" in result.stderr
    assert "s3cret" not in result.stderr
    dump, restore = postgres_commands(url, "x.dump")
    assert dump.endswith("'postgresql://tawasul@db.internal:5432/tawasul'")
    assert restore.startswith("pg_restore --clean --if-exists --no-owner")
