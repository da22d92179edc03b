"""The terminal channel, scripted through a pipe as another program would use it."""

from __future__ import annotations

import getpass
import io
import json
import socket
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters.console import run_console
from bot.service import Service
from conversations.fields import to_hijri
from conversations.messages import Attachment, Inbound, Reply
from storage.models import OutboxItem
from tests.conftest import make_config, run_cli, take_conversation, valid_national_id

AR_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def test_plain_script_prints_replies_after_each_line(tmp_path: Path) -> None:
    run_cli(tmp_path, "db", "upgrade")
    out = run_cli(tmp_path, "chat", "--user", "1", input="السلام عليكم\n٢\n").stdout
    assert "1. " in out and "7. " in out  # the menu as numbered lines
    assert "طلب دعم" in out


def test_json_mode_prints_exactly_one_line_per_input(tmp_path: Path) -> None:
    run_cli(tmp_path, "db", "upgrade")
    lines = ["hello", "", "3", "SR-1448-00009", "1234"]
    result = run_cli(tmp_path, "chat", "--json", "--user", "x", input="\n".join(lines) + "\n")
    out = result.stdout.splitlines()
    assert len(out) == len(lines)
    parsed = [json.loads(line) for line in out]
    assert parsed[0]["replies"][-1]["choices"][0] == {"label": "Ask a question", "value": "faq"}
    assert parsed[1]["replies"] == []
    assert "reference" in parsed[2]["replies"][0]["text"]
    assert "SR-1448-00009" not in out[4]  # nothing said about a number nobody proved


def test_scripted_arabic_support_request_is_listed_with_every_answer(tmp_path: Path) -> None:
    run_cli(tmp_path, "db", "upgrade")
    document = tmp_path / "هوية.pdf"
    document.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    nid = valid_national_id("109988776")
    script = [
        "السلام عليكم",
        "٢",
        "١",
        "نورة سعد العتيبي",
        nid.translate(AR_DIGITS),
        "٠٥٠١٢٣٤٥٦٧",
        "المدينة المنورة",
        "٦",
        "٢٥٠٠",
        "٢",
        "١٨٠٠",
        "٢",
        "أسرة من ستة أفراد والدخل لا يكفي الاحتياجات الأساسية",
        f"/attach {document}",
        "تم",
        "١",
        "نعم",
    ]
    result = run_cli(tmp_path, "chat", "--json", "--user", "966", input="\n".join(script) + "\n")
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(replies) == len(script)
    final = replies[-1]["replies"][0]["text"]
    assert "SR-" in final and "هـ" in final

    listed = json.loads(run_cli(tmp_path, "requests", "list", "--json").stdout)
    assert len(listed) == 1
    request = listed[0]
    assert request["status"] == "submitted" and request["form"] == "support_request"
    assert request["declared_at"] and request["declaration_channel"] == "console"
    assert request["due_at"] and request["due_hijri"].startswith("14")
    # The Hijri day is the same day as the local one (not the UTC day, a day early after
    # midnight in Riyadh).
    assert request["due_hijri"] == to_hijri(date.fromisoformat(request["due_at"][:10]))
    answers = request["answers"]
    assert answers["full_name"]["value"] == "نورة سعد العتيبي"
    assert answers["national_id"]["value"] == nid
    assert answers["mobile"]["value"] == "+966501234567"
    assert answers["family_members"]["value"] == "6"
    assert answers["monthly_income"]["value"] == "2500"
    assert answers["housing"]["value"] == "rent" and answers["monthly_rent"]["value"] == "1800"
    assert answers["support_kind"]["value"] == "food"
    assert request["documents"][0]["content_type"] == "application/pdf"
    assert request["documents"][0]["filename"] == "هوية.pdf"
    assert "/" not in request["documents"][0]["ref"].rsplit("/", 1)[-1]

    shown = run_cli(tmp_path, "requests", "show", request["reference"]).stdout
    assert "نورة سعد العتيبي" in shown and "draft → submitted" in shown
    prefix, year, number = request["reference"].split("-")
    short = f"{prefix.lower()}-{year}-{int(number)}"  # as a beneficiary reads it out
    assert run_cli(tmp_path, "requests", "show", short).stdout == shown
    # Reading every answer of every request leaves a trace, as opening one does.
    with sqlite3.connect(tmp_path / "tawasul.db") as db:
        audit = db.execute(
            "SELECT actor, action, subject FROM audit_log "
            "WHERE action IN ('requests.exported', 'request.viewed') ORDER BY id"
        ).fetchall()
    assert [(a, s) for _, a, s in audit] == [
        ("requests.exported", "all"),
        ("request.viewed", request["reference"]),
        ("request.viewed", request["reference"]),
    ]
    assert {actor for actor, _, _ in audit} == {f"cli:{getpass.getuser()}"}  # who ran them
    # A decision made from the command line names the system account unless told whose it is.
    run_cli(tmp_path, "requests", "set-status", request["reference"], "under_review")
    by = ("--by", "supervisor@association.org")
    run_cli(tmp_path, "requests", "set-status", request["reference"], "approved", *by)
    with sqlite3.connect(tmp_path / "tawasul.db") as db:
        changes = db.execute(
            "SELECT to_status, actor FROM request_status_history ORDER BY id"
        ).fetchall()
    assert changes[-2:] == [
        ("under_review", f"cli:{getpass.getuser()}"),
        ("approved", "supervisor@association.org"),
    ]


def test_cli_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "queue", check=False)
    assert result.returncode != 0 and "tawasul db upgrade" in result.stderr


def test_queue_lists_waiting_conversations(tmp_path: Path) -> None:
    run_cli(tmp_path, "db", "upgrade")
    run_cli(tmp_path, "chat", "--user", "5", input="مرحبا\nموظف\n")
    out = json.loads(run_cli(tmp_path, "queue", "--json").stdout)
    assert len(out) == 1 and out[0]["reason"] == "asked" and out[0]["channel"] == "console"
    assert "empty" in run_cli(tmp_path, "queue").stdout or "#" in run_cli(tmp_path, "queue").stdout


def test_queue_masks_ids_and_phone_numbers(tmp_path: Path) -> None:
    run_cli(tmp_path, "db", "upgrade")
    nid = valid_national_id("109988776")
    said = f"موظف\nهويتي {nid} وجوالي ٠٥٥١٢٣٤٥٦٧ عن الطلب SR-1448-00012\n"
    run_cli(tmp_path, "chat", "--user", "5", input=said)
    [item] = json.loads(run_cli(tmp_path, "queue", "--json").stdout)
    assert item["last_message"] == "هويتي ••• وجوالي ••• عن الطلب SR-1448-00012"
    listed = run_cli(tmp_path, "queue").stdout
    assert nid not in listed and "٠٥٥١٢٣٤٥٦٧" not in listed and "هويتي •••" in listed


async def test_a_staff_reply_is_shown_when_the_terminal_talks_again(tmp_path: Path) -> None:
    """The terminal shows replies itself: one a staff member wrote meanwhile comes first at
    the next message, once, and is then delivered (not left pending in the outbox)."""
    run_cli(tmp_path, "db", "upgrade")
    run_cli(tmp_path, "chat", "--user", "12", input="hi\nagent\n")
    service = Service(make_config(tmp_path))
    try:
        await take_conversation(service, "agent@example.org", reply="Hello Ali, I am looking at it")
    finally:
        await service.close()
    lines = run_cli(tmp_path, "chat", "--user", "12", "--json", input="thanks\nthanks\n")
    first, second = (json.loads(line)["replies"] for line in lines.stdout.splitlines())
    assert [r["text"] for r in first] == ["Hello Ali, I am looking at it"]
    assert second == []  # shown once; the bot stays silent while staff have the conversation
    service = Service(make_config(tmp_path))
    try:
        async with service.db.session(write=False) as session:
            statuses = set(await session.scalars(select(OutboxItem.status)))
    finally:
        await service.close()
    assert statuses == {"sent"}


async def test_replies_taken_as_shown_are_shown_even_when_the_step_fails() -> None:
    async def waiting() -> list[Reply]:
        return [Reply("the staff member's answer")]

    async def failing(msg: Inbound) -> list[Reply]:
        raise RuntimeError("the step failed")

    async def no_files(path: Path) -> Attachment:
        raise AssertionError

    out = io.StringIO()
    with pytest.raises(RuntimeError):
        await run_console(
            failing, no_files, user="7", stdin=io.StringIO("hi\n"), stdout=out, waiting=waiting
        )
    assert "the staff member's answer" in out.getvalue()


def test_retrying_an_unknown_reply_says_only_that(tmp_path: Path) -> None:
    run_cli(tmp_path, "db", "upgrade")
    unknown = run_cli(tmp_path, "outbox", "retry", "99999", check=False)
    assert unknown.returncode == 1
    assert unknown.stdout.strip() == "Not failed or held (or unknown): #99999"
    assert run_cli(tmp_path, "outbox", "retry", "--all").stdout.strip() == "Nothing to queue again."


def test_serve_refuses_a_taken_or_impossible_port_before_announcing_anything(
    tmp_path: Path,
) -> None:
    run_cli(tmp_path, "db", "upgrade")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli(tmp_path, "serve", "--port", str(port), check=False)
    assert busy.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    assert "serving" not in busy.stdout + busy.stderr
    impossible = run_cli(tmp_path, "serve", "--port", "99999", check=False)
    assert impossible.returncode == 2 and "99999" in impossible.stderr
    assert "serving" not in impossible.stdout + impossible.stderr


def test_every_command_has_help(tmp_path: Path) -> None:
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["chat", "--help"],
        ["db", "upgrade", "--help"],
        ["queue", "--help"],
        ["requests", "list", "--help"],
        ["requests", "show", "--help"],
        ["config", "check", "--help"],
    ):
        assert "Usage:" in run_cli(tmp_path, *args).stdout
