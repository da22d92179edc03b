"""The rules of staff accounts (shared by `tawasul staff` and the console), the settings view
and the knowledge-base writer, on a real database and real files."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import load_config
from bot.kb_edit import clean_entry, save_entry, version, write_checked
from bot.service import Service
from bot.settings_view import MASK, effective_settings
from conversations.faq import FaqError, default_faq_text, parse_faq
from staff.accounts import (
    AccountError,
    add_account,
    change_password,
    change_role,
    check_email,
    set_active,
)
from staff.security import verify_password
from storage.models import AuditEntry
from storage.staff import ConsoleTx

PW = "a long password 1"


async def user(service: Service, email: str) -> tuple[str, bool, str]:
    async with service.db.session(write=False) as session:
        row = await ConsoleTx(session).staff_by_email(email)
    assert row is not None
    return row.role, row.active, row.password_hash


async def audit(service: Service) -> list[tuple[str, str, str]]:
    async with service.db.session(write=False) as session:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(r.actor, r.action, r.subject) for r in rows]


def test_administration_belongs_to_its_roles() -> None:
    from staff.permissions import Perm, Role, Staff, can

    agent, supervisor, admin = (Staff(1, "x@example.org", "", role) for role in Role)
    admin_only = (Perm.STAFF_MANAGE, Perm.KNOWLEDGE_MANAGE, Perm.SETTINGS)
    assert not any(can(agent, p) for p in (*admin_only, Perm.OUTBOX))
    assert can(supervisor, Perm.OUTBOX) and not any(can(supervisor, p) for p in admin_only)
    assert all(can(admin, p) for p in (*admin_only, Perm.OUTBOX))


def test_email_addresses_are_trimmed_and_checked() -> None:
    assert check_email("  Hind@Example.ORG ") == "hind@example.org"
    for bad in ("", "hind", "@example.org", "hind@", "hind@localhost", "a b@example.org"):
        with pytest.raises(AccountError) as refused:
            check_email(bad)
        assert refused.value.code == "email"


async def test_an_account_gets_a_generated_password_or_the_one_given(service: Service) -> None:
    made = await add_account(service.db, "A@example.org", "agent", actor="cli")
    assert made.email == "a@example.org" and made.generated_password
    assert len(made.generated_password) >= 10
    assert await verify_password((await user(service, "a@example.org"))[2], made.generated_password)
    given = await add_account(service.db, "b@example.org", "admin", actor="cli", password=PW)
    assert given.generated_password is None
    assert await verify_password((await user(service, "b@example.org"))[2], PW)
    for kwargs, code in (
        ({"email": "a@example.org", "role": "agent"}, "exists"),
        ({"email": "c@example.org", "role": "owner"}, "role"),
        ({"email": "c@example.org", "role": "agent", "password": "short"}, "password"),
        ({"email": "c@example.org", "role": "agent", "password": ""}, "password"),
        ({"email": "c@example.org", "role": "agent", "name": "x" * 201}, "name"),
    ):
        with pytest.raises(AccountError) as refused:
            await add_account(service.db, actor="cli", **kwargs)  # type: ignore[arg-type]
        assert refused.value.code == code, kwargs
    assert await audit(service) == [
        ("cli", "staff.added", "a@example.org"),
        ("cli", "staff.added", "b@example.org"),
    ]


async def test_there_is_always_an_active_administrator(service: Service) -> None:
    await add_account(service.db, "boss@example.org", "admin", actor="cli", password=PW)
    await add_account(service.db, "hind@example.org", "agent", actor="cli", password=PW)
    for change in (
        change_role(service.db, "boss@example.org", "supervisor", actor="cli"),
        set_active(service.db, "boss@example.org", False, actor="cli"),
    ):
        with pytest.raises(AccountError) as refused:
            await change
        assert refused.value.code == "last_admin"
    assert (await user(service, "boss@example.org"))[:2] == ("admin", True)

    await change_role(service.db, "hind@example.org", "admin", actor="staff:boss@example.org")
    # With a second administrator, the first may step down; never themselves from the console.
    with pytest.raises(AccountError) as itself:
        await change_role(service.db, "boss@example.org", "agent", actor="staff:boss@example.org")
    assert itself.value.code == "self"
    with pytest.raises(AccountError):
        await set_active(service.db, "boss@example.org", False, actor="staff:boss@example.org")
    await change_role(service.db, "boss@example.org", "agent", actor="staff:hind@example.org")
    assert (await user(service, "boss@example.org"))[0] == "agent"
    await set_active(service.db, "boss@example.org", False, actor="staff:hind@example.org")
    assert (await user(service, "boss@example.org"))[1] is False
    with pytest.raises(AccountError) as unknown:
        await set_active(service.db, "nobody@example.org", True, actor="cli")
    assert unknown.value.code == "unknown"
    actions = [(a, b) for a, b, _ in await audit(service)][2:]
    assert actions == [
        ("staff:boss@example.org", "staff.role"),
        ("staff:hind@example.org", "staff.role"),
        ("staff:hind@example.org", "staff.disabled"),
    ]


async def test_a_new_password_is_checked_and_ends_the_sessions(service: Service) -> None:
    await add_account(service.db, "a@example.org", "agent", actor="cli", password=PW)
    with pytest.raises(AccountError):
        await change_password(service.db, "a@example.org", "short", actor="cli")
    await change_password(service.db, "a@example.org", "another long one", actor="cli")
    assert await verify_password((await user(service, "a@example.org"))[2], "another long one")
    with pytest.raises(AccountError):
        await change_password(service.db, "zz@example.org", "another long one", actor="cli")


# -- settings ------------------------------------------------------------------------------------


def test_settings_say_where_each_value_comes_from_and_hide_secrets(tmp_path: Path) -> None:
    path = tmp_path / "tawasul.toml"
    path.write_text(
        '[server]\nport = 9000\n[database]\nurl = "postgresql+asyncpg://tw:s3cr3t@db/tw"\n'
        '[email]\npassword = "mail-secret"\n',
        "utf-8",
    )
    environ = {"TAWASUL_TELEGRAM_TOKEN": "123:telegram-secret", "TAWASUL_SERVER_HOST": "0.0.0.0"}
    config = load_config(path, environ)
    shown = {
        f"{section.name}.{s.key}": s
        for section in effective_settings(config, environ)
        for s in section.settings
    }
    assert (shown["server.port"].value, shown["server.port"].source) == ("9000", "file")
    assert shown["server.host"].source == "environment"
    assert shown["server.shutdown_seconds"].source == "default"
    assert shown["telegram.token"].value == MASK and shown["telegram.token"].secret
    assert shown["email.password"].value == MASK and shown["email.password"].source == "file"
    assert shown["staff.secret_key"].value == "" and shown["staff.secret_key"].secret
    assert "s3cr3t" not in shown["database.url"].value and "db/tw" in shown["database.url"].value
    assert shown["hours.workdays"].value.startswith("sunday, monday")
    assert shown["telegram.token"].env == "TAWASUL_TELEGRAM_TOKEN"
    everything = repr(effective_settings(config, environ))
    for secret in ("telegram-secret", "mail-secret", "s3cr3t"):
        assert secret not in everything


# -- knowledge-base writes ----------------------------------------------------------------------


def test_a_write_that_would_break_the_file_leaves_it_untouched(tmp_path: Path) -> None:
    path = tmp_path / "faq.toml"
    path.write_text(default_faq_text(), "utf-8")
    path.chmod(0o640)
    before = path.read_bytes()
    for broken in ("[[faq]]\nid = 3\n", "not toml at all [", ""):
        with pytest.raises(FaqError):
            write_checked(path, broken)
        assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["faq.toml"]
    write_checked(path, default_faq_text().replace("ساعات العمل", "أوقات العمل", 1))
    assert path.read_bytes() != before and path.stat().st_mode & 0o777 == 0o640


def test_entries_are_added_and_edited_keeping_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "faq.toml"
    path.write_text("# Our answers\n" + default_faq_text(), "utf-8")
    entry = clean_entry(
        "library", {"ar": [" هل عندكم  مكتبة؟ ", "", "هل عندكم مكتبة؟"]}, {"ar": "نعم.", "en": " "}
    )
    assert entry.questions["ar"] == ("هل عندكم مكتبة؟",) and entry.answers == {"ar": "نعم."}
    save_entry(path, entry, original_id=None)
    text = path.read_text("utf-8")
    assert text.startswith("# Our answers\n")
    entries = parse_faq(text, "faq")
    assert (
        entries[-1].id == "library" and len(entries) == len(parse_faq(default_faq_text(), "")) + 1
    )
    renamed = clean_entry("books", {"en": ["Do you lend books?"]}, {"ar": "نعم", "en": "Yes"})
    save_entry(path, renamed, original_id="library", seen=version(text))
    entries = parse_faq(path.read_text("utf-8"), "faq")
    assert entries[-1].id == "books" and entries[-1].questions == {"en": ("Do you lend books?",)}
    with pytest.raises(FaqError):
        save_entry(path, renamed, original_id="books", seen=version(text))  # stale copy
    with pytest.raises(FaqError):
        clean_entry("Not valid", {"ar": ["س"]}, {"ar": "ج"})


def test_the_command_line_follows_the_same_rules(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    run_cli(tmp_path, "db", "upgrade")
    added = run_cli(
        tmp_path, "staff", "add", "boss@example.org", "--role", "admin", "--generate-password"
    )
    assert "shown once" in added.stdout
    last = run_cli(tmp_path, "staff", "role", "boss@example.org", "agent", check=False)
    assert last.returncode != 0 and "only active administrator" in last.stderr
    refused = run_cli(tmp_path, "staff", "disable", "boss@example.org", check=False)
    assert refused.returncode != 0 and "only active administrator" in refused.stderr
    run_cli(
        tmp_path,
        "staff",
        "add",
        "hind.alqahtani@example.org",
        "--role",
        "agent",
        "--name",
        "هند",
        "--generate-password",
    )
    listed = run_cli(tmp_path, "staff", "list").stdout.splitlines()
    # One column each, the addresses padded to the longest, and the name last.
    assert [line.split()[:3] for line in listed] == [
        ["boss@example.org", "admin", "active"],
        ["hind.alqahtani@example.org", "agent", "active"],
    ]
    assert listed[1].endswith("هند") and listed[0].endswith("never")
    assert listed[0].index("admin") == listed[1].index("agent")
