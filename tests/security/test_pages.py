"""Security headers on every kind of response, and one web-chat session never sees another's."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from adapters.webchat.api import STATIC
from staff.web import STAFF_STATIC
from tests.security.conftest import browser

TEMPLATES = Path(STAFF_STATIC).parent / "templates"


def _policy(response: httpx.Response) -> dict[str, str]:
    header = response.headers["content-security-policy"]
    return {
        part.split()[0]: " ".join(part.split()[1:]) for part in header.split(";") if part.strip()
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/static/webchat/chat.js"),
        ("GET", "/staff/login"),
        ("GET", "/staff/static/staff.css"),
        ("GET", "/healthz"),
        ("GET", "/no/such/page"),
        ("GET", "/api/webchat/messages"),  # 401
        ("POST", "/api/webchat/start"),  # 422, empty body
    ],
)
async def test_every_response_carries_the_headers(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await http.request(method, path)
    assert response.headers["x-content-type-options"] == "nosniff"
    # The staff console sets its own, equally strict, values; they are kept.
    assert response.headers["referrer-policy"] in ("no-referrer", "same-origin")
    assert "camera=()" in response.headers["permissions-policy"]
    policy = _policy(response)
    assert policy["frame-ancestors"] == "'none'"
    assert policy["default-src"] in ("'none'", "'self'")
    assert "unsafe-inline" not in policy["script-src"] + policy["style-src"]
    assert "unsafe-eval" not in policy["script-src"]


async def test_refused_large_bodies_carry_the_headers(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/webchat/start",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": str(10**10)},
    )
    assert response.status_code == 413
    assert _policy(response)["frame-ancestors"] == "'none'"


def test_pages_have_nothing_inline_that_the_policy_would_block() -> None:
    """The strict policy is honest only while the pages keep scripts and styles in files."""
    pages = [STATIC / "index.html", *TEMPLATES.glob("*.html")]
    assert len(pages) > 5
    for page in pages:
        html = page.read_text("utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page.name
        assert "<style" not in html, page.name
        assert not re.search(r"\sstyle\s*=", html), page.name
        assert not re.search(r"\son[a-z]+\s*=", html), page.name
        assert "javascript:" not in html, page.name
    for script in [STATIC / "chat.js", Path(STAFF_STATIC) / "staff.js"]:
        code = script.read_text("utf-8")
        assert "eval(" not in code and "new Function" not in code
        assert 'setAttribute("style"' not in code


# -- web-chat sessions -------------------------------------------------------------------------


async def _started(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/webchat/start", json={"lang": "ar"})
    assert response.status_code == 200
    cookie = client.cookies.get("tawasul_chat")
    assert cookie
    return cookie


async def test_a_session_never_sees_another_sessions_messages(app: FastAPI) -> None:
    secret = f"سر-{secrets.token_hex(6)}"
    async with browser(app) as alice, browser(app) as bob:
        await _started(alice)
        said = await alice.post("/api/webchat/messages", json={"text": secret})
        assert said.status_code == 200
        alice_ids = {m["id"] for m in (await alice.get("/api/webchat/messages")).json()["messages"]}
        await _started(bob)
        for after in (0, -5):
            seen = (await bob.get("/api/webchat/messages", params={"after": after})).json()
            assert secret not in str(seen)
            assert not alice_ids & {m["id"] for m in seen["messages"]}
        restarted = (await bob.post("/api/webchat/start", json={})).json()
        assert secret not in str(restarted)


@pytest.mark.parametrize(
    "forged",
    [
        "",
        "x",
        "../../etc/passwd",
        "' OR 1=1 --",
        "a" * 19,
        "a" * 65,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%00",
        "%D9%A1%D9%A2%D9%A3%D9%A4%D9%A5%D9%A6%D9%A7",
    ],
)
async def test_forged_cookies_are_refused(app: FastAPI, forged: str) -> None:
    async with browser(app) as mallory:
        mallory.cookies.set("tawasul_chat", forged)
        for response in (
            await mallory.get("/api/webchat/messages"),
            await mallory.post("/api/webchat/messages", json={"text": "hello"}),
        ):
            assert response.status_code == 401
            assert set(response.json()) == {"error", "message"}


async def test_a_guessed_well_formed_cookie_is_no_session(app: FastAPI) -> None:
    async with browser(app) as alice, browser(app) as mallory:
        await _started(alice)
        await alice.post("/api/webchat/messages", json={"text": "رقم هويتي في الرسالة"})
        mallory.cookies.set("tawasul_chat", secrets.token_urlsafe(24))
        seen = await mallory.get("/api/webchat/messages")
        assert seen.status_code == 401 and "رقم هويتي" not in seen.text


async def test_the_session_cookie_is_httponly_and_samesite(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/webchat/start", json={"lang": "ar"})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    token = http.cookies["tawasul_chat"]
    assert len(token) == 44  # 16 random bytes and 16 of their signature
