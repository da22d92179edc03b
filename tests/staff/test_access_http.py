"""Every console endpoint: signed out, without the CSRF token, and with a role too small."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.service import Service
from tests.staff.conftest import (
    ACCOUNTS,
    PASSWORD,
    World,
    audit_count,
    csrf_of,
)


@pytest.fixture
def seed_dir(world_seed: tuple[Path, World]) -> Path:
    return world_seed[0]


PAGES = [
    ("/staff/", "agent"),
    ("/staff/queue/rows", "agent"),
    ("/staff/conversations/{conversation}", "agent"),
    ("/staff/conversations/{conversation}/history", "agent"),
    ("/staff/requests", "agent"),
    ("/staff/requests/{reference}", "agent"),
    ("/staff/documents/{document}", "agent"),
    ("/staff/messages/{message}/attachments/0", "agent"),
    ("/staff/beneficiaries/{beneficiary}", "agent"),
    ("/staff/beneficiaries/{beneficiary}/export.json", "supervisor"),
    ("/staff/canned", "agent"),
    ("/staff/staff-members", "admin"),
    ("/staff/reports", "supervisor"),
    ("/staff/reports.csv", "supervisor"),
]
STREAMS = ["/staff/events/queue", "/staff/events/conversations/{conversation}"]
FORMS: list[tuple[str, dict[str, str], str]] = [
    ("/staff/logout", {}, "agent"),
    ("/staff/conversations/{conversation}/claim", {}, "agent"),
    ("/staff/conversations/{conversation}/reply", {"text": "مرحبا"}, "agent"),
    ("/staff/conversations/{conversation}/note", {"text": "ملاحظة"}, "agent"),
    ("/staff/conversations/{conversation}/transfer", {"to": ACCOUNTS["agent2"]}, "agent"),
    ("/staff/conversations/{conversation}/escalate", {"text": ""}, "agent"),
    ("/staff/conversations/{conversation}/release", {}, "agent"),
    ("/staff/conversations/{conversation}/close", {}, "agent"),
    ("/staff/requests/{reference}/status", {"status": "approved", "message": ""}, "supervisor"),
    ("/staff/requests/{reference}/verify", {"note": ""}, "agent"),
    (
        "/staff/beneficiaries/{beneficiary}/contacts",
        {"kind": "call", "note": "اتصال", "happened_at": "2026-11-22T10:00"},
        "agent",
    ),
    ("/staff/beneficiaries/{beneficiary}/anonymise", {"confirm": "{beneficiary}"}, "supervisor"),
    ("/staff/canned", {"title": "ترحيب", "text_ar": "أهلًا {name}", "text_en": ""}, "supervisor"),
    ("/staff/staff-members/active", {"email": ACCOUNTS["agent2"], "active": "0"}, "admin"),
]
SMALLER = {"supervisor": "agent", "admin": "supervisor"}


def fill(template: str, world: World) -> str:
    for name, value in world.__dict__.items():
        template = template.replace("{" + name + "}", str(value))
    return template


@pytest.mark.parametrize("path", [p for p, _ in PAGES] + STREAMS)
async def test_pages_send_the_signed_out_to_the_login(
    path: str, world: World, browser_for: Any
) -> None:
    anonymous = await browser_for()
    response = await anonymous.get(fill(path, world))
    assert response.status_code == 303
    assert response.headers["location"].startswith("/staff/login?next=/staff/")


@pytest.mark.parametrize(("path", "data", "role"), FORMS)
async def test_forms_refuse_the_signed_out(
    path: str,
    data: dict[str, str],
    role: str,
    world: World,
    browser_for: Any,
    console_service: Service,
) -> None:
    anonymous = await browser_for()
    before = await audit_count(console_service)
    response = await anonymous.post(
        fill(path, world), {k: fill(v, world) for k, v in data.items()}, csrf=False
    )
    # To the sign-in form, which brings the member back to the page afterwards.
    assert response.status_code == 303
    assert response.headers["location"].startswith("/staff/login?next=")
    assert await audit_count(console_service) == before


@pytest.mark.parametrize(("path", "data", "role"), FORMS)
async def test_forms_without_the_csrf_token_change_nothing(
    path: str,
    data: dict[str, str],
    role: str,
    world: World,
    browser_for: Any,
    console_service: Service,
) -> None:
    admin = await browser_for("admin")
    before = await audit_count(console_service)
    form = {k: fill(v, world) for k, v in data.items()}
    missing = await admin.post(fill(path, world), form, csrf=False)
    assert missing.status_code == 403
    assert "انتهت صلاحية النموذج" in missing.text
    forged = await admin.post(fill(path, world), {**form, "csrf": "forged"}, csrf=False)
    assert forged.status_code == 403
    assert await audit_count(console_service) == before


@pytest.mark.parametrize(("path", "role"), [(p, r) for p, r in PAGES if r != "agent"])
async def test_pages_refuse_a_smaller_role(
    path: str, role: str, world: World, browser_for: Any
) -> None:
    member = await browser_for(SMALLER[role])
    response = await member.get(fill(path, world))
    assert response.status_code == 403
    assert 'data-testid="error-page"' in response.text
    allowed = await browser_for(role)
    assert (await allowed.get(fill(path, world))).status_code == 200


@pytest.mark.parametrize(("path", "data", "role"), [f for f in FORMS if f[2] != "agent"])
async def test_forms_refuse_a_smaller_role(
    path: str,
    data: dict[str, str],
    role: str,
    world: World,
    browser_for: Any,
    console_service: Service,
) -> None:
    member = await browser_for(SMALLER[role])
    before = await audit_count(console_service)
    response = await member.post(fill(path, world), {k: fill(v, world) for k, v in data.items()})
    assert response.status_code == 403
    assert await audit_count(console_service) == before
    allowed = await browser_for(role)
    done = await allowed.post(fill(path, world), {k: fill(v, world) for k, v in data.items()})
    assert done.status_code == 303, done.text


@pytest.mark.parametrize("path", [p for p, r in PAGES if r == "agent"])
async def test_every_agent_page_renders(path: str, world: World, browser_for: Any) -> None:
    agent = await browser_for("agent")
    response = await agent.get(fill(path, world))
    assert response.status_code == 200
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_login_form_needs_its_csrf_token(browser_for: Any) -> None:
    anonymous = await browser_for()
    await anonymous.get("/staff/login")
    response = await anonymous.post(
        "/staff/login",
        {"email": ACCOUNTS["agent"], "password": PASSWORD},
        csrf=False,
    )
    assert response.status_code == 403
    assert (await anonymous.get("/staff/")).status_code == 303


async def test_the_csrf_token_of_one_session_is_refused_in_another(
    world: World, browser_for: Any, console_service: Service
) -> None:
    first, second = await browser_for("agent"), await browser_for("agent")
    assert first.csrf != second.csrf
    stolen = await second.post(
        f"/staff/conversations/{world.conversation}/claim", {"csrf": first.csrf}, csrf=False
    )
    assert stolen.status_code == 403
    assert await audit_count(console_service, "conversation.claimed") == 0


async def test_login_page_token_comes_with_its_own_cookie(browser_for: Any) -> None:
    anonymous = await browser_for()
    page = await anonymous.get("/staff/login")
    token = csrf_of(page.text)
    other = await browser_for()  # a different browser: the token is not valid there
    await other.get("/staff/login")
    response = await other.post(
        "/staff/login",
        {"email": ACCOUNTS["agent"], "password": PASSWORD, "csrf": token},
        csrf=False,
    )
    assert response.status_code == 403


async def test_error_pages_are_the_consoles_own_with_its_navigation(
    world: World, browser_for: Any
) -> None:
    """A refusal or a wrong address is a console page with the member's bar and the way on,
    not a bare page or the API's JSON."""
    agent = await browser_for("agent")
    denied = await agent.get("/staff/reports")
    assert denied.status_code == 403
    assert 'data-testid="me"' in denied.text and 'aria-label="أقسام الوحدة"' in denied.text
    bad = await agent.get("/staff/beneficiaries/abc")
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
    assert 'data-testid="error-page"' in bad.text and 'data-testid="me"' in bad.text
    long = await agent.post(
        f"/staff/conversations/{world.conversation}/reply", {"text": "x" * 4001}
    )
    assert long.status_code == 422 and 'data-testid="error-page"' in long.text
    # The API keeps its JSON.
    api = await agent.client.post("/api/webchat/messages", content=b"{")
    assert api.headers["content-type"].startswith("application/json")
