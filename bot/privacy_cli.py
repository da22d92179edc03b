"""`tawasul db backup|restore` and `tawasul retention run`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from bot.cli import State, db, pass_state, riyadh, run_async
from storage.backup import known_revisions


def _sqlite_file(state: State, command: str, path: str) -> Path:
    from storage.backup import postgres_commands
    from storage.db import sqlite_path

    url = state.config.database.url
    database = sqlite_path(url)
    if database is None:
        dump, restore = postgres_commands(url, path)
        raise click.ClickException(
            f"`tawasul db {command}` copies SQLite databases; for PostgreSQL use its own "
            f"tools (the password from PGPASSWORD or ~/.pgpass):\n  {dump}\n  {restore}"
        )
    return database


@db.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@pass_state
@run_async
async def db_backup(state: State, path: Path) -> None:
    """Copy the SQLite database to PATH, consistent even while the server is serving."""
    from storage.backup import BackupError, backup

    database = _sqlite_file(state, "backup", str(path))
    try:
        snapshot = await backup(database, path, known_revisions())
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Backed up to {snapshot.path} ({snapshot.size} bytes, revision {snapshot.revision}, "
        f"{snapshot.messages} messages, {snapshot.requests} requests)."
    )


@db.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Restore even though the database looks in use.")
@pass_state
def db_restore(state: State, path: Path, force: bool) -> None:
    """Replace the SQLite database with the backup at PATH (stop the server first)."""
    from storage.backup import BackupError, restore_sqlite
    from storage.migrate import head_revision

    database = _sqlite_file(state, "restore", str(path))
    try:
        snapshot, kept = restore_sqlite(path, database, known_revisions(), force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    if kept is not None:
        click.echo(f"The previous database was saved as {kept}.")
    click.echo(
        f"Restored {snapshot.path} into {database} (revision {snapshot.revision}, "
        f"{snapshot.messages} messages, {snapshot.requests} requests)."
    )
    if snapshot.revision != head_revision():
        click.echo("The backup has an older schema: run `tawasul db upgrade` before serving.")


@click.group("retention")
def retention_group() -> None:
    """Removing old message texts and attachments."""


@retention_group.command("run")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--months", type=int, help="Override [retention] months.")
@pass_state
@run_async
async def retention_run(state: State, dry_run: bool, as_json: bool, months: int | None) -> None:
    """Remove texts and files of conversations closed longer than [retention] months."""
    from bot.cli import _service
    from storage.retention import run_retention

    config = state.config
    service = await _service(config)
    try:
        report = await run_retention(
            service.db,
            service.files,
            datetime.now(UTC),
            months or config.retention.months,
            dry_run=dry_run,
        )
    finally:
        await service.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        return
    verb = "Would remove" if dry_run else "Removed"
    click.echo(
        f"{verb} the content of {report.messages} messages in {report.conversations} "
        f"conversations, {report.documents} documents and {report.files} files "
        f"(older than {riyadh(report.cutoff, config)})."
    )
    if report.oldest_message:
        click.echo(f"  oldest message: {riyadh(report.oldest_message, config)}")
    if report.oldest_document_request:
        click.echo(f"  oldest document's request: {riyadh(report.oldest_document_request, config)}")
