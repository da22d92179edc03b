"""Requests, documents, beneficiaries, canned answers and reports over HTTP."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.service import Service
from conversations.messages import Channel
from storage.models import Beneficiary, Identity, Message, Request, RequestStatusChange
from storage.staff_models import ContactLog, RequestVerification
from tests.conftest import Chat
from tests.staff.conftest import World, audit_count, queued


@pytest.fixture
def seed_dir(world_seed: tuple[Path, World]) -> Path:
    return world_seed[0]


async def request_row(service: Service, reference: str) -> Request:
    async with service.db.session(write=False) as session:
        row = await session.scalar(select(Request).where(Request.reference == reference))
    assert row is not None
    return row


async def test_requests_list_puts_late_ones_first_and_marks_them(
    world: World, browser_for: Any, console_service: Service
) -> None:
    # A second request whose due date has passed.
    late_ref = await fill_another(console_service)
    async with console_service.db.session() as session:
        row = await session.scalar(select(Request).where(Request.reference == late_ref))
        assert row is not None and row.due_at is not None
        row.due_at = row.due_at.replace(year=2020)
    agent = await browser_for("agent")
    page = await agent.get("/staff/requests")
    assert page.status_code == 200
    assert page.text.index(late_ref) < page.text.index(world.reference)
    assert page.text.count('data-late="true"') == 1
    assert 'data-testid="late"' in page.text
    only = await agent.get("/staff/requests", params={"status": "approved"})
    assert world.reference not in only.text


async def fill_another(service: Service) -> str:
    from tests.conftest import valid_national_id
    from tests.test_engine import fill_support_request

    chat = Chat(service, Channel.WEBCHAT, sender="web-session-applicant-0002")
    return await fill_support_request(chat, nid=valid_national_id("109876543"))


async def test_request_page_shows_answers_documents_and_declaration(
    world: World, browser_for: Any, console_service: Service
) -> None:
    agent = await browser_for("agent")
    page = await agent.get(f"/staff/requests/{world.reference.lower()}")
    assert page.status_code == 200
    assert "محمد عبدالله القحطاني" in page.text
    assert "الاسم الكامل" in page.text  # the form's own label
    assert f'href="/staff/documents/{world.document}"' in page.text
    assert "أقرّ المستفيد" in page.text
    assert "Rented" not in page.text
    assert "******" not in page.text  # staff check the ID itself against the documents
    assert await audit_count(console_service, "request.viewed") == 1
    # In English the choices read in English, though the beneficiary answered in Arabic.
    await agent.get("/staff/lang/en", params={"next": "/staff/"})
    english = await agent.get(f"/staff/requests/{world.reference}")
    assert "Rented" in english.text
    # The documents answer too: counted in the console's language.
    assert "ملف واحد" in page.text
    assert "1 file" in english.text and "ملف واحد" not in english.text

    document = await agent.get(f"/staff/documents/{world.document}")
    assert document.status_code == 200
    assert document.content.startswith(b"%PDF")
    assert document.headers["content-type"] == "application/pdf"
    assert document.headers["content-disposition"].startswith("inline")
    assert "no-store" in document.headers["cache-control"]
    assert await audit_count(console_service, "document.viewed") == 1

    attachment = await agent.get(f"/staff/messages/{world.message}/attachments/0")
    assert attachment.content.startswith(b"%PDF")
    # The applicant's conversation is back with the bot: the agent opens the file as the
    # request's document, and is told nothing of the message's other files.
    assert (await agent.get(f"/staff/messages/{world.message}/attachments/5")).status_code == 403
    supervisor = await browser_for("supervisor")
    missing = await supervisor.get(f"/staff/messages/{world.message}/attachments/5")
    assert missing.status_code == 404
    assert (await agent.get("/staff/documents/999")).status_code == 404
    assert (await agent.get("/staff/requests/SR-0000-00000")).status_code == 404


async def test_needs_information_is_refused_without_a_message(
    world: World, browser_for: Any, console_service: Service
) -> None:
    """The beneficiary would be told only "more information is needed", not which."""
    agent = await browser_for("agent")
    before = await request_row(console_service, world.reference)
    refused = await agent.post(
        f"/staff/requests/{world.reference}/status", {"status": "needs_info", "message": " \n "}
    )
    assert refused.status_code == 303
    assert (await request_row(console_service, world.reference)).status == before.status
    page = await agent.get(refused.headers["location"])
    assert 'data-testid="flash-error"' in page.text and "ما المعلومات" in page.text
    assert '<option value="needs_info" selected>' in page.text  # the choice is kept


async def test_status_change_tells_the_beneficiary_with_the_message(
    world: World, browser_for: Any, console_service: Service
) -> None:
    agent, supervisor = await browser_for("agent"), await browser_for("supervisor")
    review = await agent.post(
        f"/staff/requests/{world.reference}/status",
        {"status": "needs_info", "message": "نحتاج صورة عقد الإيجار"},
    )
    assert review.status_code == 303 and "done=status" in review.headers["location"]
    row = await request_row(console_service, world.reference)
    assert row.status == "needs_info"
    async with console_service.db.session(write=False) as session:
        told = await session.scalar(
            select(Message)
            .where(Message.beneficiary_id == row.beneficiary_id, Message.direction == "out")
            .order_by(Message.id.desc())
        )
        change = await session.scalar(
            select(RequestStatusChange).order_by(RequestStatusChange.id.desc())
        )
    assert told is not None and "نحتاج صورة عقد الإيجار" in told.text
    assert change is not None and change.actor == "staff:agent@example.org"

    # Agents move a request through review; the decision is a supervisor's.
    page = await agent.get(f"/staff/requests/{world.reference}")
    assert 'value="approved"' not in page.text
    assert (
        await agent.post(f"/staff/requests/{world.reference}/status", {"status": "approved"})
    ).status_code == 403
    approved = await supervisor.post(
        f"/staff/requests/{world.reference}/status", {"status": "approved"}
    )
    assert approved.status_code == 303
    wrong = await supervisor.post(
        f"/staff/requests/{world.reference}/status", {"status": "needs_info", "message": "x"}
    )
    assert "error=transition" in wrong.headers["location"]
    closed = await supervisor.post(
        f"/staff/requests/{world.reference}/status", {"status": "closed"}
    )
    assert closed.status_code == 303
    async with console_service.db.session(write=False) as session:
        last = await session.scalar(
            select(Message)
            .where(Message.beneficiary_id == row.beneficiary_id, Message.direction == "out")
            .order_by(Message.id.desc())
        )
    assert last is not None and last.payload.get("key") == "survey.ask_request"
    history = await supervisor.get(f"/staff/requests/{world.reference}")
    assert history.text.count("<li><strong>") >= 4


async def test_mark_verified_once(world: World, browser_for: Any, console_service: Service) -> None:
    agent = await browser_for("agent")
    done = await agent.post(f"/staff/requests/{world.reference}/verify", {"note": "طابقت الهوية"})
    assert done.status_code == 303
    page = await agent.get(f"/staff/requests/{world.reference}")
    assert 'data-testid="verified"' in page.text and "طابقت الهوية" in page.text
    await agent.post(f"/staff/requests/{world.reference}/verify", {"note": "مرة ثانية"})
    assert await audit_count(console_service, "request.verified") == 1
    listing = await agent.get("/staff/requests")
    assert "badge ok" in listing.text


async def test_beneficiary_profile_contact_log_and_export(
    world: World, browser_for: Any, console_service: Service
) -> None:
    agent, supervisor = await browser_for("agent"), await browser_for("supervisor")
    page = await agent.get(f"/staff/beneficiaries/{world.beneficiary}")
    assert page.status_code == 200 and "محمد عبدالله القحطاني" in page.text
    assert await audit_count(console_service, "beneficiary.viewed") == 1
    assert 'data-testid="export"' not in page.text  # agents do not export
    # A web chat's address is its browser session's secret: staff see its last characters.
    assert "web-session-applicant-0001" not in page.text and "…0001" in page.text

    logged = await agent.post(
        f"/staff/beneficiaries/{world.beneficiary}/contacts",
        {"kind": "visit", "note": "زار المقر وسلّم الأوراق", "happened_at": "2026-11-20T09:30"},
    )
    assert logged.status_code == 303 and "done=contact" in logged.headers["location"]
    bad = await agent.post(
        f"/staff/beneficiaries/{world.beneficiary}/contacts",
        {"kind": "fax", "note": "x", "happened_at": "2026-11-20T09:30"},
    )
    assert "error=contact" in bad.headers["location"]
    future = await agent.post(
        f"/staff/beneficiaries/{world.beneficiary}/contacts",
        {"kind": "visit", "note": "x", "happened_at": "2030-11-20T09:30"},
    )
    assert "error=contact_future" in future.headers["location"]
    async with console_service.db.session(write=False) as session:
        contact = await session.scalar(select(ContactLog))
    assert contact is not None and contact.kind == "visit"
    assert contact.happened_at.hour == 6  # 09:30 in Riyadh is 06:30 UTC

    exported = await supervisor.get(f"/staff/beneficiaries/{world.beneficiary}/export.json")
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    data = json.loads(exported.text)
    assert data["beneficiary"]["display_name"] == "محمد عبدالله القحطاني"
    assert data["requests"][0]["reference"] == world.reference
    assert data["requests"][0]["answers"] and data["contacts"][0]["kind"] == "visit"
    assert all("verify_last4" not in r for r in data["requests"])
    assert [i["address"] for i in data["identities"]] == ["…0001"]
    assert await audit_count(console_service, "beneficiary.exported") == 1


async def test_anonymise_erases_the_person_and_keeps_the_audit(
    world: World, browser_for: Any, console_service: Service
) -> None:
    supervisor = await browser_for("supervisor")
    wrong = await supervisor.post(
        f"/staff/beneficiaries/{world.beneficiary}/anonymise", {"confirm": "1"}
    )
    assert "error=confirm" in wrong.headers["location"]
    document = console_service.files.root
    files_before = [p for p in document.rglob("*") if p.is_file()]
    assert files_before
    done = await supervisor.post(
        f"/staff/beneficiaries/{world.beneficiary}/anonymise",
        {"confirm": str(world.beneficiary)},
    )
    assert done.status_code == 303
    async with console_service.db.session(write=False) as session:
        person = await session.get(Beneficiary, world.beneficiary)
        identities = list(
            await session.scalars(
                select(Identity).where(Identity.beneficiary_id == world.beneficiary)
            )
        )
        texts = list(
            await session.scalars(
                select(Message.text).where(Message.beneficiary_id == world.beneficiary)
            )
        )
    assert person is not None and person.display_name == "" and person.national_id is None
    assert all(i.address.startswith("anonymised:") for i in identities)
    assert set(texts) == {""}
    assert not [p for p in document.rglob("*") if p.is_file()]
    assert await audit_count(console_service, "beneficiary.anonymised") == 1
    page = await supervisor.get(f"/staff/requests/{world.reference}")
    assert "محمد" not in page.text
    # The profile says the ways to reach them were anonymised, not an internal identifier.
    profile = (await supervisor.get(f"/staff/beneficiaries/{world.beneficiary}")).text
    assert "anonymised:" not in profile and 'data-testid="anonymised">مجهّل<' in profile


async def test_anonymise_leaves_no_file_and_no_staff_note_naming_the_person(
    world: World, browser_for: Any, console_service: Service
) -> None:
    """A PDPL deletion request: a file sent outside any form, a status message and a
    verification note naming the person all go with the rest."""
    from tests.test_engine import pdf

    named = "أحمد، هوية 1012345672"
    agent, supervisor = await browser_for("agent"), await browser_for("supervisor")
    chat = Chat(console_service, Channel.WEBCHAT, sender="web-session-applicant-0001")
    outside = await pdf(console_service, "medical-report.pdf")
    await chat.say("هذا تقرير طبي إضافي", attachments=[outside])
    assert console_service.files.path(outside.ref).is_file()
    await agent.post(
        f"/staff/requests/{world.reference}/status",
        {"status": "under_review", "message": f"{named} — بانتظار المراجعة"},
    )
    await agent.post(f"/staff/requests/{world.reference}/verify", {"note": f"{named} يطابق العقد"})
    page = await supervisor.get(f"/staff/requests/{world.reference}")
    assert page.text.count("1012345672") == 2
    exported = await supervisor.get(f"/staff/beneficiaries/{world.beneficiary}/export.json")
    assert "1012345672" in exported.text

    done = await supervisor.post(
        f"/staff/beneficiaries/{world.beneficiary}/anonymise",
        {"confirm": str(world.beneficiary)},
    )
    assert done.status_code == 303
    assert not console_service.files.path(outside.ref).exists()
    assert not [p for p in console_service.files.root.rglob("*") if p.is_file()]
    page = await supervisor.get(f"/staff/requests/{world.reference}")
    assert page.status_code == 200 and "1012345672" not in page.text and "أحمد" not in page.text
    exported = await supervisor.get(f"/staff/beneficiaries/{world.beneficiary}/export.json")
    assert "1012345672" not in exported.text and "أحمد" not in exported.text
    async with console_service.db.session(write=False) as session:
        notes = list(await session.scalars(select(RequestStatusChange.note)))
        verification = await session.scalar(select(RequestVerification.note))
    assert all("1012345672" not in n for n in notes) and verification == ""


async def test_canned_answers_are_filled_in_the_beneficiary_language(
    console_service: Service, browser_for: Any
) -> None:
    supervisor, agent = await browser_for("supervisor"), await browser_for("agent")
    # A misspelt placeholder or a lone brace would reach the beneficiary as written: refused,
    # with what was typed kept in the form.
    for stray in ("{nme}", "{unknown}", "{", "}"):
        refused = await supervisor.post(
            "/staff/canned",
            {"title": "ترحيب", "text_ar": f"أهلًا {stray}، معك {{staff}}", "text_en": ""},
        )
        assert refused.status_code == 400, stray
        assert 'data-testid="canned-stray"' in refused.text
        assert f"أهلًا {stray}، معك {{staff}}</textarea>" in refused.text
        assert 'data-replace-url="/staff/canned"' in refused.text
    saved = await supervisor.post(
        "/staff/canned",
        {
            "title": "ترحيب",
            "text_ar": "أهلًا {name}، معك {staff} من {org}.",
            "text_en": "Hello {name}, this is {staff} from {org}.",
        },
    )
    assert saved.status_code == 303
    assert (
        (await supervisor.post("/staff/canned", {"title": "", "text_ar": ""}))
        .headers["location"]
        .endswith("error=canned")
    )
    conversation_id = await queued(console_service)
    await agent.post(f"/staff/conversations/{conversation_id}/claim")
    page = await agent.get(f"/staff/conversations/{conversation_id}")
    # No name on record: the placeholder goes with the space before it ("أهلًا ،" before).
    assert 'data-text="أهلًا، معك Agent من الجمعية."' in page.text
    listing = await agent.get("/staff/canned")
    assert "ترحيب" in listing.text and 'name="text_ar"' not in listing.text


async def test_admin_disables_and_enables_a_colleague(
    console_service: Service, browser_for: Any
) -> None:
    admin = await browser_for("admin")
    agent = await browser_for("agent")
    page = await admin.get("/staff/staff-members")
    assert "agent@example.org" in page.text
    off = await admin.post(
        "/staff/staff-members/active", {"email": "agent@example.org", "active": "0"}
    )
    assert off.status_code == 303
    assert (await agent.get("/staff/")).status_code == 303  # the session ended
    itself = await admin.post(
        "/staff/staff-members/active", {"email": "admin@example.org", "active": "0"}
    )
    assert "error=self" in itself.headers["location"]


async def test_reports_page_and_csv(
    world: World, browser_for: Any, console_service: Service
) -> None:
    supervisor = await browser_for("supervisor")
    page = await supervisor.get(
        "/staff/reports", params={"start": "2026-11-01", "end": "2026-11-30"}
    )
    assert page.status_code == 200
    assert 'data-testid="chart-channels"' in page.text and "<svg" in page.text
    assert 'data-testid="kpi-messages"' in page.text
    exported = await supervisor.get(
        "/staff/reports.csv", params={"start": "2026-11-01", "end": "2026-11-30"}
    )
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows[0] == ["section", "key", "value"]
    submitted = [r for r in rows if r[0] == "requests" and r[1] == "submitted"]
    assert submitted == [["requests", "submitted", "1"]]
    messages_in = sum(int(r[2]) for r in rows if r[0] == "messages_in")
    assert messages_in >= 10
    empty = await supervisor.get(
        "/staff/reports.csv", params={"start": "2020-01-01", "end": "2020-01-31"}
    )
    assert not [r for r in csv.reader(io.StringIO(empty.text)) if r[0] == "messages_in"]
    # The days covered, both included, as chosen in the association's calendar.
    assert ["period", "from", "2026-11-01"] in rows and ["period", "to", "2026-11-30"] in rows
    # A day that is not a date is said, not silently replaced.
    typo = await supervisor.get("/staff/reports", params={"start": "2026-13-01"})
    assert typo.status_code == 200 and 'data-testid="flash-error"' in typo.text
    assert 'data-testid="flash-error"' not in page.text
    refused = await supervisor.get("/staff/reports.csv", params={"start": "garbage"})
    assert refused.status_code == 400
    for far_off in ({"end": "9999-12-31"}, {"start": "0001-01-01"}):
        far = await supervisor.get("/staff/reports", params=far_off)
        assert far.status_code == 200 and 'data-testid="flash-error"' in far.text


async def test_the_due_date_names_the_hijri_era(world: World, browser_for: Any) -> None:
    agent = await browser_for("agent")
    page = (await agent.get(f"/staff/requests/{world.reference}")).text
    assert re.search(r"\u2066\d{4}-\d\d-\d\d\u2069 هـ", page), "no هـ after the Hijri date"
    agent.client.cookies.set("tawasul_staff_lang", "en")
    english = (await agent.get(f"/staff/requests/{world.reference}")).text
    assert re.search(r"\u2066\d{4}-\d\d-\d\d\u2069 AH", english)
