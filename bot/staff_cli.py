"""`tawasul staff`: accounts of the staff console."""

from __future__ import annotations

import sys
from collections.abc import Awaitable
from typing import TypeVar

import click

from bot.cli import State, opened_database, pass_state, riyadh, run_async

ROLES = ["agent", "supervisor", "admin"]
T = TypeVar("T")


def _read_password(*, can_generate: bool) -> str:
    """Asked twice on a terminal; the first line of stdin otherwise (for scripts).
    ``can_generate``: the command has --generate-password, so the refusal may name it."""
    if sys.stdin.isatty():
        value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return value
    line = sys.stdin.readline()
    if not line.strip():
        raise click.UsageError(
            "no password given: type it on a terminal"
            + (
                ", pipe it on the first line of stdin, or use --generate-password"
                if can_generate
                else " or pipe it on the first line of stdin"
            )
        )
    return line.rstrip("\r\n")


@click.group("staff")
def staff_group() -> None:
    """Accounts of the staff console (served under /staff)."""


@staff_group.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the account may do.")
@click.option("--name", default="", help="The name colleagues see.")
@click.option(
    "--generate-password",
    is_flag=True,
    help="Make up a password and print it once, instead of asking for one.",
)
@pass_state
@run_async
async def staff_add(
    state: State, email: str, role: str, name: str, generate_password: bool
) -> None:
    """Create an account; the password is asked for (or read from stdin)."""
    from staff.accounts import add_account

    password = None if generate_password else _read_password(can_generate=True)
    async with opened_database(state.config) as database:
        added = await _checked(
            add_account(database, email, role, actor="cli", name=name, password=password)
        )
    click.echo(f"Added {added.email} ({added.role}). Sign in at /staff/ on the server.")
    if added.generated_password:
        click.echo(f"Password (shown once): {added.generated_password}")


async def _checked(work: Awaitable[T]) -> T:
    """The rules' refusals as command-line errors."""
    from staff.accounts import AccountError

    try:
        return await work
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None


@staff_group.command("list")
@pass_state
@run_async
async def staff_list(state: State) -> None:
    """List the accounts."""
    from storage.staff import ConsoleTx

    async with (
        opened_database(state.config) as database,
        database.session(write=False) as session,
    ):
        rows = await ConsoleTx(session).staff_list()
    if not rows:
        click.echo("No staff accounts yet: tawasul staff add EMAIL --role admin")
        return
    width = max(len(row.email) for row in rows)
    for row in rows:
        seen = riyadh(row.last_login_at, state.config) or "never"
        state_text = "active" if row.active else "disabled"
        click.echo(
            f"{row.email:<{width}}  {row.role:<10}  {state_text:<8}  last sign-in {seen:<22}"
            f"  {row.name}".rstrip()
        )


async def _set_active(state: State, email: str, active: bool) -> list[int]:
    from staff.accounts import set_active

    async with opened_database(state.config) as database:
        return await _checked(set_active(database, email, active, actor="cli"))


@staff_group.command("disable")
@click.argument("email")
@pass_state
@run_async
async def staff_disable(state: State, email: str) -> None:
    """Disable an account; its sessions end at once and the conversations it held go back
    to the queue."""
    requeued = await _set_active(state, email, False)
    click.echo(f"Disabled {email}.")
    if requeued:
        ids = ", ".join(f"#{i}" for i in requeued)
        click.echo(f"{len(requeued)} conversation(s) it held went back to the queue: {ids}.")


@staff_group.command("enable")
@click.argument("email")
@pass_state
@run_async
async def staff_enable(state: State, email: str) -> None:
    """Enable a disabled account again."""
    await _set_active(state, email, True)
    click.echo(f"Enabled {email}.")


@staff_group.command("role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
@pass_state
@run_async
async def staff_role(state: State, email: str, role: str) -> None:
    """Change what an account may do."""
    from staff.accounts import change_role

    async with opened_database(state.config) as database:
        await _checked(change_role(database, email, role, actor="cli"))
    click.echo(f"{email} is now {role}.")


@staff_group.command("password")
@click.argument("email")
@pass_state
@run_async
async def staff_password(state: State, email: str) -> None:
    """Set a new password (asked for, or read from stdin); open sessions end."""
    from staff.accounts import change_password

    password = _read_password(can_generate=False)
    async with opened_database(state.config) as database:
        await _checked(change_password(database, email, password, actor="cli"))
    click.echo(f"Password of {email} changed.")
