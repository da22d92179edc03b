"""Backups of a SQLite database while the server writes to it, and their restore.

SQLite's online backup API copies the pages under one read transaction: with WAL the server
keeps committing meanwhile, and the copy is the database as of the moment the copy began.
PostgreSQL has its own tools (pg_dump, pg_restore); `postgres_commands` says which to run.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from storage.private import create_private, private_file, private_folder


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; ``str()`` says why and what to do."""


@dataclass(frozen=True)
class Snapshot:
    path: Path
    size: int
    revision: str
    tables: int
    messages: int
    requests: int


def known_revisions() -> frozenset[str]:
    """Every schema revision this version of Tawasul has a migration for."""
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(r.revision for r in script.walk_revisions())


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}{'?mode=ro' if readonly else ''}"
    connection = sqlite3.connect(uri, uri=True, timeout=10, isolation_level=None)
    connection.execute("PRAGMA busy_timeout=10000")
    return connection


def inspect(path: Path, known_revisions: frozenset[str]) -> Snapshot:
    """Check that ``path`` is a sound Tawasul database at a migration this version knows."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        connection = _connect(path, readonly=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: cannot be opened ({exc})") from None
    try:
        try:
            (check,) = connection.execute("PRAGMA integrity_check").fetchone()
            names = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{path}: not a SQLite database ({exc})") from None
        if check != "ok":
            raise BackupError(f"{path}: damaged database: {check}")
        if "alembic_version" not in names or "messages" not in names:
            raise BackupError(f"{path}: not a Tawasul database")
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else ""
        if revision not in known_revisions:
            raise BackupError(
                f"{path}: schema revision {revision or 'none'} is unknown to this version "
                "of Tawasul; restore it with the version that made it"
            )
        messages = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
        requests = connection.execute("SELECT count(*) FROM requests").fetchone()[0]
    finally:
        connection.close()
    return Snapshot(path, path.stat().st_size, revision, len(names), messages, requests)


def _copy(source: Path, target: Path) -> None:
    src = _connect(source, readonly=True)
    try:
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            # One step (pages=-1): a step-by-step copy restarts whenever the server commits,
            # and might never finish on a busy server.
            src.backup(dst, pages=-1)
            # The copy is one self-contained file, not a database waiting for its WAL.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def backup_sqlite(
    source: Path, target: Path, known_revisions: frozenset[str], *, overwrite: bool = False
) -> Snapshot:
    """Copy the live database to ``target`` (written under a temporary name, then renamed);
    an existing ``target`` (an earlier backup, say) only when ``overwrite``."""
    if not source.is_file():
        raise BackupError(f"{source}: no database there (run `tawasul db upgrade` first?)")
    if target.resolve() == source.resolve():
        raise BackupError("the backup must go to another file than the database")
    if target.exists() and not overwrite:
        raise BackupError(
            f"{target} exists (an earlier backup?): give another name, or --force to replace it"
        )
    private_folder(target.parent)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        _copy(source, partial)
        private_file(partial)
        snapshot = inspect(partial, known_revisions)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return replace(snapshot, path=target)


def in_use(database: Path) -> bool:
    """A WAL file exists while any connection has the database open (or after a crash)."""
    wal = database.with_name(database.name + "-wal")
    shm = database.with_name(database.name + "-shm")
    return wal.exists() or shm.exists()


def restore_sqlite(
    backup: Path, database: Path, known_revisions: frozenset[str], *, force: bool = False
) -> tuple[Snapshot, Path | None]:
    """Replace the database's content with the backup's; the current one is kept aside.

    Returns the restored snapshot and where the previous database was saved (if any).
    """
    snapshot = inspect(backup, known_revisions)
    if backup.resolve() == database.resolve():
        raise BackupError("the backup is the database itself")
    if in_use(database) and not force:
        raise BackupError(
            f"{database} looks in use (its -wal/-shm files exist): stop `tawasul serve` "
            "first, or give --force if you are sure nothing runs"
        )
    kept: Path | None = None
    if database.is_file():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        kept = database.with_name(f"{database.name}.before-restore-{stamp}")
        _copy(database, kept)
        private_file(kept)
    private_folder(database.parent)
    create_private(database)
    # Through the backup API, not a file copy: SQLite takes the locks and clears the WAL.
    src = _connect(backup, readonly=True)
    try:
        dst = sqlite3.connect(database, timeout=10, isolation_level=None)
        try:
            src.backup(dst, pages=-1)
        finally:
            dst.close()
    finally:
        src.close()
    return snapshot, kept


async def backup(
    source: Path, target: Path, known_revisions: frozenset[str], *, overwrite: bool = False
) -> Snapshot:
    """The copy runs in a thread: the event loop goes on serving meanwhile."""
    return await asyncio.to_thread(
        lambda: backup_sqlite(source, target, known_revisions, overwrite=overwrite)
    )


def postgres_commands(url: str, path: str) -> tuple[str, str]:
    """The pg_dump and pg_restore lines for this database (password left to PGPASSWORD)."""
    given = make_url(url)
    parsed = URL.create(
        "postgresql", given.username, None, given.host, given.port, given.database, given.query
    )
    target = parsed.render_as_string(hide_password=False)
    dump = f"pg_dump --format=custom --no-owner --file={path} '{target}'"
    restore = f"pg_restore --clean --if-exists --no-owner --dbname='{target}' {path}"
    return dump, restore
