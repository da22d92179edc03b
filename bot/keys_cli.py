"""`tawasul keys generate|rotate`: the keys personal data is encrypted with."""

from __future__ import annotations

import click

from bot.cli import State, opened_database, pass_state, run_async
from bot.config import ConfigError, load_config
from bot.keys import data_keyring


@click.group("keys")
def keys_group() -> None:
    """The keys that encrypt personal data at rest ([security])."""


@keys_group.command("generate")
@pass_state
def keys_generate(state: State) -> None:
    """Print a new random key (for security.data_keys or security.lookup_key)."""
    from storage.crypto import generate_key

    click.echo(generate_key())
    # Leaving the demo: what it stored is read only with its key, kept in the key file.
    try:
        config = load_config(state.path)
    except ConfigError:
        return
    path = config.security.key_file
    if not config.security.data_keys and path.is_file():
        click.echo(
            f"Note: {path} holds the demo's keys. To keep what was stored with them, put its "
            'data key after the new one, TAWASUL_SECURITY_DATA_KEYS="NEW,DEMO", then run '
            "`tawasul keys rotate`.",
            err=True,
        )


@keys_group.command("rotate")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=200,
    show_default=True,
    help="Rows rewritten per transaction.",
)
@click.option(
    "--decrypt",
    is_flag=True,
    help="Store every value in clear instead (only before going back to an older version).",
)
@pass_state
@run_async
async def keys_rotate(state: State, batch_size: int, decrypt: bool) -> None:
    """Re-encrypt every stored value with the first data key and re-hash lookups.

    Values written before encryption are encrypted; values under an older key move to the
    current one; keyed hashes are recomputed from the clear values, so a new lookup key
    needs no old one. Safe to run while serving (restart the server with the new keys
    first) and to run again: what is already current is left alone.
    """
    from storage.rotation import TableRotation, rotate

    config = state.config
    async with opened_database(config) as database:
        keyring = data_keyring(config)

        def progress(report: TableRotation) -> None:
            click.echo(
                f"  {report.table}: {report.checked}/{report.rows} rows checked, "
                f"{report.rewritten} rewritten",
                err=True,
            )

        target = "clear values" if decrypt else f"data key {keyring.current_id}"
        click.echo(f"Moving every stored value to {target}...", err=True)
        reports = await rotate(
            database, keyring, batch_size=batch_size, decrypt=decrypt, progress=progress
        )
    rewritten = sum(r.rewritten for r in reports)
    click.echo(f"Rewrote {rewritten} rows in {len(reports)} tables; all now use {target}.")
    for report in reports:
        if report.conflicts:
            click.echo(
                f"{report.table}: rows {', '.join(map(str, report.conflicts))} hold an address "
                "another row already holds; merge or remove them, then run again.",
                err=True,
            )
    if any(r.conflicts for r in reports):
        raise SystemExit(1)
