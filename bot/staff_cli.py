"""`tawasul staff`: accounts of the staff console."""

from __future__ import annotations

import sys

import click

from bot.cli import State, opened_database, pass_state, run_async

ROLES = ["agent", "supervisor", "admin"]


def _read_password() -> str:
    """Asked twice on a terminal; the first line of stdin otherwise (for scripts)."""
    if sys.stdin.isatty():
        value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return value
    return sys.stdin.readline().rstrip("\r\n")


@click.group("staff")
def staff_group() -> None:
    """Accounts of the staff console (served under /staff)."""


@staff_group.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the account may do.")
@click.option("--name", default="", help="The name colleagues see.")
@pass_state
@run_async
async def staff_add(state: State, email: str, role: str, name: str) -> None:
    """Create an account; the password is asked for (or read from stdin)."""
    from staff.security import WeakPassword, hash_password
    from storage.staff import ConsoleTx, StaffExists

    if "@" not in email:
        raise click.BadParameter("give an email address", param_hint="EMAIL")
    try:
        password_hash = await hash_password(_read_password())
    except WeakPassword as exc:
        raise click.ClickException(str(exc)) from None
    try:
        async with opened_database(state.config) as database, database.session() as session:
            await ConsoleTx(session).add_staff(email, role, password_hash, name=name)
    except StaffExists:
        raise click.ClickException(f"{email} already has an account") from None
    click.echo(f"Added {email.strip().lower()} ({role}). Sign in at /staff/ on the server.")


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
    for row in rows:
        seen = row.last_login_at.isoformat(timespec="minutes") if row.last_login_at else "never"
        state_text = "active" if row.active else "disabled"
        click.echo(f"{row.email}  {row.role:<10}  {state_text:<8}  last sign-in {seen}")


async def _set_active(state: State, email: str, active: bool) -> None:
    from storage.staff import ConsoleTx

    async with opened_database(state.config) as database, database.session() as session:
        found = await ConsoleTx(session).set_staff_active(email, active, actor="cli")
    if not found:
        raise click.ClickException(f"no account {email}")


@staff_group.command("disable")
@click.argument("email")
@pass_state
@run_async
async def staff_disable(state: State, email: str) -> None:
    """Disable an account; its sessions end at once."""
    await _set_active(state, email, False)
    click.echo(f"Disabled {email}.")


@staff_group.command("enable")
@click.argument("email")
@pass_state
@run_async
async def staff_enable(state: State, email: str) -> None:
    """Enable a disabled account again."""
    await _set_active(state, email, True)
    click.echo(f"Enabled {email}.")


@staff_group.command("password")
@click.argument("email")
@pass_state
@run_async
async def staff_password(state: State, email: str) -> None:
    """Set a new password (asked for, or read from stdin); open sessions end."""
    from staff.security import WeakPassword, hash_password
    from storage.staff import ConsoleTx

    try:
        password_hash = await hash_password(_read_password())
    except WeakPassword as exc:
        raise click.ClickException(str(exc)) from None
    async with opened_database(state.config) as database, database.session() as session:
        found = await ConsoleTx(session).set_password(email, password_hash, actor="cli")
    if not found:
        raise click.ClickException(f"no account {email}")
    click.echo(f"Password of {email} changed.")
