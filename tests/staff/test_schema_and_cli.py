"""`tawasul staff` manages accounts from the shell."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


def test_staff_commands(tmp_path: Path) -> None:
    run_cli(tmp_path, "db", "upgrade")
    added = run_cli(
        tmp_path,
        "staff",
        "add",
        "Hind@Example.org",
        "--role",
        "supervisor",
        input="long enough pw\n",
    )
    assert "hind@example.org" in added.stdout
    again = run_cli(
        tmp_path,
        "staff",
        "add",
        "hind@example.org",
        "--role",
        "agent",
        input="long enough pw\n",
        check=False,
    )
    assert again.returncode != 0 and "already" in again.stderr
    short = run_cli(
        tmp_path, "staff", "add", "x@example.org", "--role", "agent", input="short\n", check=False
    )
    assert short.returncode != 0 and "10 characters" in short.stderr
    none = run_cli(
        tmp_path, "staff", "add", "z@example.org", "--role", "agent", input="", check=False
    )
    assert none.returncode != 0 and "no password given" in none.stderr
    bad_role = run_cli(
        tmp_path,
        "staff",
        "add",
        "y@example.org",
        "--role",
        "boss",
        input="long enough pw\n",
        check=False,
    )
    assert bad_role.returncode != 0
    listed = run_cli(tmp_path, "staff", "list").stdout
    assert "hind@example.org" in listed and "supervisor" in listed and "active" in listed
    assert "x@example.org" not in listed
    run_cli(tmp_path, "staff", "disable", "hind@example.org")
    assert "disabled" in run_cli(tmp_path, "staff", "list").stdout
    missing = run_cli(tmp_path, "staff", "disable", "nobody@example.org", check=False)
    assert missing.returncode != 0
    run_cli(tmp_path, "staff", "enable", "hind@example.org")
    run_cli(tmp_path, "staff", "password", "hind@example.org", input="another long pw\n")
    assert " active" in run_cli(tmp_path, "staff", "list").stdout


def test_staff_commands_need_a_migrated_database(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "staff", "list", check=False)
    assert result.returncode != 0 and "db upgrade" in result.stderr
