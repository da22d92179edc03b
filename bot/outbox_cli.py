"""`tawasul outbox`: replies set aside after their attempts (or held), and sending them again."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import click

from bot.cli import State, opened_database, pass_state, riyadh
from bot.config import Config
from storage.models import OutboxItem
from storage.repository import Tx


def mask(address: str) -> str:
    """Enough of an address to tell items apart, never the whole phone or email."""
    if "@" in address:
        local, _, domain = address.partition("@")
        tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{local[:1]}•••@•••" + (f".{tld}" if tld else "")
    if len(address) <= 4:
        return "•" * len(address)
    return address[:4] + "•" * max(len(address) - 6, 1) + address[-2:]


def describe(item: OutboxItem, config: Config) -> dict[str, Any]:
    return {
        "id": item.id,
        "status": item.status,
        "channel": item.channel,
        "kind": item.kind,
        "address": mask(item.address),
        "attempts": item.attempts,
        "last_error": item.last_error,
        "conversation_id": item.conversation_id,
        "created_at": riyadh(item.created_at, config),
    }


def _run(state: State, work: Callable[[Tx], Awaitable[Any]], *, write: bool = False) -> Any:
    """``work`` in one transaction on the database alone (no channel, no knowledge base to
    load), checked like every command's: there, reachable and up to date. A running server
    finds what was queued again on its next pass over the outbox."""

    async def go() -> Any:
        async with (
            opened_database(state.config) as database,
            database.session(write=write) as session,
        ):
            return await work(Tx(session))

    return asyncio.run(go())


@click.group("outbox")
def outbox_group() -> None:
    """Replies that could not be delivered."""


@outbox_group.command("failed")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
@pass_state
def failed(state: State, as_json: bool) -> None:
    """List replies that failed after their attempts, or are held for staff."""
    items = [describe(i, state.config) for i in _run(state, lambda tx: tx.failed_outbox())]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    if not items:
        click.echo("Nothing failed or held.")
        return
    for i in items:
        click.echo(
            f"#{i['id']:<6} {i['status']:<7} {i['channel']:<9} {i['address']:<16} "
            f"attempts {i['attempts']:<3} {i['last_error'] or ''}"
        )
    click.echo(f"{len(items)} item(s). `tawasul outbox retry ID` or `--all` sends them again.")


@outbox_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every failed and held item.")
@pass_state
def retry(state: State, ids: tuple[int, ...], every: bool) -> None:
    """Queue failed or held replies again (a running server sends them within a second)."""
    if not ids and not every:
        raise click.UsageError("give one or more item ids, or --all")
    retried = _run(state, lambda tx: tx.retry_outbox(None if every else list(ids)), write=True)
    missing = sorted(set(ids) - set(retried))
    if retried:
        click.echo(f"Queued again: {', '.join(f'#{i}' for i in retried)}")
    elif not missing:  # --all with nothing failed or held
        click.echo("Nothing to queue again.")
    if missing:
        click.echo(f"Not failed or held (or unknown): {', '.join(f'#{i}' for i in missing)}")
        sys.exit(1)
