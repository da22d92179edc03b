"""`tawasul db backup|restore` and `tawasul retention run`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bot.cli import State, db, local, pass_state, riyadh, run_async
from bot.config import Config
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
@click.option("--force", is_flag=True, help="Replace PATH when it exists.")
@pass_state
@run_async
async def db_backup(state: State, path: Path, force: bool) -> None:
    """Copy the SQLite database to PATH, consistent even while the server is serving."""
    from storage.backup import BackupError, backup

    database = _sqlite_file(state, "backup", str(path))
    try:
        snapshot = await backup(database, path, known_revisions(), overwrite=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Backed up to {snapshot.path} ({snapshot.size} bytes, revision {snapshot.revision}, "
        f"{snapshot.messages} messages, {snapshot.requests} requests)."
    )
    security = state.config.security
    if not (security.data_keys or security.lookup_key):
        click.echo(
            f"Its personal data is encrypted with the demo keys in {security.key_file}: keep "
            "that file with the copy, without it the copy cannot be read."
        )
    else:
        click.echo(
            "Its personal data is encrypted: keep the keys ([security] data_keys, lookup_key) "
            "apart from the copy, without them it cannot be read."
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
@click.option(
    "--months",
    type=click.IntRange(1, 1200),
    help="Override [retention] months (1 to 1200, like the setting).",
)
@click.option("--yes", is_flag=True, help="Remove without asking first (for scripts).")
@pass_state
@run_async
async def retention_run(
    state: State, dry_run: bool, as_json: bool, months: int | None, yes: bool
) -> None:
    """Remove texts and files of conversations closed longer than [retention] months.

    Says what it will remove and asks first, unless --yes (or --dry-run, which removes
    nothing)."""
    from bot.cli import _service
    from storage.retention import RetentionReport, run_retention

    config = state.config
    months = months if months is not None else config.retention.months
    service = await _service(config)
    try:
        if not dry_run and not yes:
            plan = await run_retention(
                service.db, service.files, datetime.now(UTC), months, dry_run=True
            )
            if _nothing(plan):
                click.echo(f"Nothing to remove: nothing is older than {_cutoff(plan, config)}.")
                return
            click.echo(f"This will remove {_summary(plan, config)}", err=True)
            click.echo("The texts and files cannot be brought back.", err=True)
            if not click.confirm("Remove them?", err=True):
                raise click.ClickException("nothing was removed")
        report: RetentionReport = await run_retention(
            service.db, service.files, datetime.now(UTC), months, dry_run=dry_run
        )
    finally:
        await service.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        return
    verb = "Would remove" if dry_run else "Removed"
    click.echo(f"{verb} {_summary(report, config)}")
    if report.oldest_message:
        click.echo(f"  oldest message: {riyadh(report.oldest_message, config)}")
    if report.oldest_document_request:
        click.echo(f"  oldest document's request: {riyadh(report.oldest_document_request, config)}")


def _nothing(report: Any) -> bool:
    return not (report.messages or report.documents or report.files or report.subjects)


def _cutoff(report: Any, config: Config) -> str:
    """The cutoff's day in the association's time zone: a time of day far back would carry
    the local mean time of before 1947 (+03:06:52 in Riyadh), not the zone's offset."""
    return local(report.cutoff, config).date().isoformat()


def _summary(report: Any, config: Config) -> str:
    return (
        f"the content of {report.messages} messages in {report.conversations} "
        f"conversations, {report.documents} documents and {report.files} files (older than "
        f"{_cutoff(report, config)})."
    )
