"""Signing in and out: passwords, cookies, the rate limit, the signing key, the language."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.app import create_app
from bot.service import Service
from staff.console import PRELOGIN_COOKIE, SESSION_COOKIE
from storage.staff_models import StaffSession, StaffSetting
from tests.conftest import make_config
from tests.staff.conftest import ACCOUNTS, PASSWORD, audit_count, csrf_of, seed_copy


async def try_login(
    client: httpx.AsyncClient, email: str, password: str, next_path: str = ""
) -> httpx.Response:
    page = await client.get("/staff/login")
    return await client.post(
        "/staff/login",
        data={"email": email, "password": password, "csrf": csrf_of(page.text), "next": next_path},
    )


async def test_login_sets_a_safe_cookie_and_is_audited(
    browser_for: Any, console_service: Service
) -> None:
    browser = await browser_for()
    response = await try_login(browser.client, "Agent@Example.org ", PASSWORD, "/staff/requests")
    assert response.status_code == 303 and response.headers["location"] == "/staff/requests"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "=")
    ).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/staff" in cookie
    assert "secure" not in cookie.replace("samesite", "")
    page = await browser.get("/staff/requests")
    assert page.status_code == 200 and 'data-testid="me"' in page.text
    # Its own icon, so the browser does not ask for a /favicon.ico that is not there.
    assert '<link rel="icon" href="data:,">' in page.text
    assert await audit_count(console_service, "staff.login") == 1


async def test_wrong_password_and_unknown_email_are_refused_alike(browser_for: Any) -> None:
    browser = await browser_for()
    wrong = await try_login(browser.client, ACCOUNTS["agent"], "not the password")
    unknown = await try_login(browser.client, "nobody@example.org", PASSWORD)
    for response, email in ((wrong, ACCOUNTS["agent"]), (unknown, "nobody@example.org")):
        assert response.status_code == 401
        assert 'data-testid="login-error"' in response.text
        # The address stays typed, alike for both; the password never comes back.
        assert f'value="{email}"' in response.text and "not the password" not in response.text
    assert (await browser.get("/staff/")).status_code == 303


async def test_repeated_failures_are_rate_limited_per_email_and_address(
    browser_for: Any,
) -> None:
    browser = await browser_for()
    for _ in range(5):
        assert (await try_login(browser.client, ACCOUNTS["agent"], "guess")).status_code == 401
    blocked = await try_login(browser.client, ACCOUNTS["agent"], PASSWORD)
    assert blocked.status_code == 429
    assert (await browser.get("/staff/")).status_code == 303
    # Another account from the same address is not locked out by someone else's guesses.
    other = await try_login(browser.client, ACCOUNTS["agent2"], PASSWORD)
    assert other.status_code == 303


def counting_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The passwords the login route checks (argon2), as they are checked."""
    import staff.routes_auth

    checked: list[str] = []
    real = staff.routes_auth.verify_password

    async def verify(password_hash: str | None, password: str) -> bool:
        checked.append(password)
        return await real(password_hash, password)

    monkeypatch.setattr(staff.routes_auth, "verify_password", verify)
    return checked


def client_from(app: Any, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)),
        base_url="http://testserver",
    )


async def parallel_logins(client: httpx.AsyncClient, attempts: list[tuple[str, str]]) -> list[int]:
    """Every (email, password) posted at once, with one login page's token."""
    token = csrf_of((await client.get("/staff/login")).text)
    responses = await asyncio.gather(
        *(
            client.post("/staff/login", data={"email": e, "password": p, "csrf": token})
            for e, p in attempts
        )
    )
    return [r.status_code for r in responses]


async def test_parallel_guesses_are_limited_as_sequential_ones(
    console_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = counting_checks(monkeypatch)
    app = create_app(console_service, workers=False)
    async with client_from(app, "203.0.113.7") as attacker:
        codes = await parallel_logins(
            attacker, [(ACCOUNTS["agent"], f"guess-{i}") for i in range(100)]
        )
        assert codes.count(401) == len(checked) <= 5
        assert codes.count(429) >= 95 and set(codes) == {401, 429}
        # The right password is refused too, until the minute has passed.
        assert (await try_login(attacker, ACCOUNTS["agent"], PASSWORD)).status_code == 429
    async with client_from(app, "198.51.100.20") as colleague:
        assert (await try_login(colleague, ACCOUNTS["agent"], PASSWORD)).status_code == 303


async def test_one_password_tried_on_many_accounts_is_limited_per_address(
    console_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = counting_checks(monkeypatch)
    app = create_app(console_service, workers=False)
    per_address = console_service.config.staff.login_attempts_per_address_per_minute
    async with client_from(app, "203.0.113.8") as sprayer:
        accounts = [f"staff{i}@example.org" for i in range(60)] + list(ACCOUNTS.values())
        codes = await parallel_logins(sprayer, [(a, "Riyadh2026!") for a in accounts])
        assert codes.count(401) == len(checked) <= per_address
        assert codes.count(429) >= len(accounts) - per_address
        assert (await try_login(sprayer, ACCOUNTS["agent2"], PASSWORD)).status_code == 429
    async with client_from(app, "198.51.100.21") as colleague:
        assert (await try_login(colleague, ACCOUNTS["agent2"], PASSWORD)).status_code == 303


async def test_logout_ends_the_session_for_good(browser_for: Any, console_service: Service) -> None:
    browser = await browser_for("agent")
    cookie = browser.client.cookies.get(SESSION_COOKIE)
    out = await browser.post("/staff/logout")
    assert out.status_code == 303 and out.headers["location"] == "/staff/login"
    async with console_service.db.session(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(StaffSession)) == 0
    replay = await browser_for()
    replay.client.cookies.set(SESSION_COOKIE, cookie, domain="testserver.local", path="/staff")
    assert (await replay.get("/staff/")).status_code == 303


async def test_a_tampered_cookie_is_ignored(browser_for: Any) -> None:
    browser = await browser_for("agent")
    cookie = browser.client.cookies.get(SESSION_COOKIE)
    # One character of the signature changed, away from its end: the last character of a
    # base64 signature carries unused bits, so a change there may decode to the same bytes
    # (as "…xx" did about once in a thousand runs).
    at = len(cookie) - 5
    changed = "A" if cookie[at] != "A" else "B"
    tampered = cookie[:at] + changed + cookie[at + 1 :]
    browser.client.cookies.set(SESSION_COOKIE, tampered, domain="testserver.local", path="/staff")
    assert (await browser.get("/staff/")).status_code == 303


async def test_a_disabled_account_cannot_sign_in(
    browser_for: Any, console_service: Service
) -> None:
    from storage.staff import ConsoleTx

    async with console_service.db.session() as session:
        await ConsoleTx(session).set_staff_active(ACCOUNTS["agent"], False, actor="test")
    browser = await browser_for()
    assert (await try_login(browser.client, ACCOUNTS["agent"], PASSWORD)).status_code == 401


async def test_after_login_only_console_paths_are_followed(browser_for: Any) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/staff//evil.example", "/x"):
        browser = await browser_for()
        response = await try_login(browser.client, ACCOUNTS["agent"], PASSWORD, target)
        assert response.headers["location"] == "/staff/"
    browser = await browser_for()
    lang = await browser.get("/staff/lang/en", params={"next": "https://evil.example/"})
    assert lang.headers["location"] == "/staff/"


async def test_english_toggle_switches_language_and_direction(browser_for: Any) -> None:
    browser = await browser_for("agent")
    arabic = await browser.get("/staff/requests")
    assert 'lang="ar" dir="rtl"' in arabic.text and "الطلبات" in arabic.text
    toggled = await browser.get("/staff/lang/en", params={"next": "/staff/requests"})
    assert toggled.headers["location"] == "/staff/requests"
    english = await browser.get("/staff/requests")
    assert 'lang="en" dir="ltr"' in english.text and "Requests" in english.text
    assert "العربية" in english.text  # the way back
    # After an action the page says "done" once; the way to the other language keeps the
    # page (its filter) but not the notice.
    noticed = await browser.get("/staff/requests", params={"status": "submitted", "done": "x"})
    toggle = noticed.text.split('data-testid="lang-toggle"', 1)[1].split(">", 1)[0]
    assert "status%3Dsubmitted" in toggle and "done" not in toggle


async def test_secure_cookies_when_configured(seeded: Path, tmp_path: Path) -> None:
    seed_copy(seeded, tmp_path)
    service = Service(
        make_config(tmp_path, staff={"cookie_secure": "true", "secret_key": "k" * 32})
    )
    try:
        app = create_app(service, workers=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://testserver"
        ) as client:
            response = await try_login(client, ACCOUNTS["agent"], PASSWORD)
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "=")
        )
        assert "; secure" in cookie.lower()
    finally:
        await service.close()


def set_cookies(response: httpx.Response) -> dict[str, str]:
    return {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}


async def login_behind_tls(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
    """The login page, and the sign-in posted from it, by a browser that talks HTTPS to a
    proxy (the test client talks HTTP to the app, so it is given the Secure cookies back as
    the browser would send them)."""
    page = await client.get("/staff/login")
    for name, value in list(client.cookies.items()):
        client.cookies.delete(name)
        client.cookies.set(name, value, domain="testserver.local", path="/staff")
    response = await client.post(
        "/staff/login",
        data={"email": ACCOUNTS["agent"], "password": PASSWORD, "csrf": csrf_of(page.text)},
    )
    return page, response


async def test_cookies_are_secure_behind_the_https_reverse_proxy(
    console_service: Service,
) -> None:
    """As `tawasul serve` runs (uvicorn trusting the local proxy's X-Forwarded-* headers),
    a sign-in through the HTTPS proxy gets Secure cookies, though the proxy talks HTTP."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    app = ProxyHeadersMiddleware(create_app(console_service, workers=False), "127.0.0.1")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
        base_url="http://testserver",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.9"},
    ) as client:
        page, response = await login_behind_tls(client)
        assert "strict-transport-security" in page.headers
        assert response.status_code == 303
        lang = await client.get("/staff/lang/en")
    for name, cookie in {
        **set_cookies(page),
        SESSION_COOKIE: set_cookies(response)[SESSION_COOKIE],
        **set_cookies(lang),
    }.items():
        assert "; secure" in cookie, name
    # Straight to the server over HTTP (no proxy), nothing says HTTPS: not Secure.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50001)),
        base_url="http://testserver",
    ) as plain:
        response = await try_login(plain, ACCOUNTS["agent"], PASSWORD)
    assert "; secure" not in set_cookies(response)[SESSION_COOKIE]


async def test_cookies_are_secure_when_the_public_url_is_https(
    seeded: Path, tmp_path: Path
) -> None:
    """A proxy that does not pass the scheme on: the configured address says HTTPS."""
    seed_copy(seeded, tmp_path)
    service = Service(
        make_config(
            tmp_path,
            staff={"public_base_url": "https://bot.example.org", "secret_key": "k" * 32},
        )
    )
    try:
        app = create_app(service, workers=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            page, response = await login_behind_tls(client)
            chat = await client.post("/api/webchat/start", json={"lang": "ar"})
        assert "; secure" in set_cookies(page)[PRELOGIN_COOKIE]
        assert "; secure" in set_cookies(response)[SESSION_COOKIE]
        assert "; secure" in set_cookies(chat)["tawasul_chat"]
    finally:
        await service.close()


async def test_without_a_configured_key_one_is_generated_and_shared(
    seeded: Path, tmp_path: Path
) -> None:
    seed_copy(seeded, tmp_path)
    first = Service(make_config(tmp_path))
    second = Service(make_config(tmp_path))
    try:
        app_one, app_two = create_app(first, workers=False), create_app(second, workers=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app_one), base_url="http://testserver"
        ) as client:
            assert (await try_login(client, ACCOUNTS["agent"], PASSWORD)).status_code == 303
            cookie = client.cookies.get(SESSION_COOKIE)
        async with first.db.session(write=False) as session:
            stored = await session.get(StaffSetting, "secret_key")
        assert stored is not None and len(stored.value) >= 40
        # Another process of the same installation accepts the session.
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app_two), base_url="http://testserver"
        ) as other:
            other.cookies.set(SESSION_COOKIE, cookie, domain="testserver.local", path="/staff")
            assert (await other.get("/staff/")).status_code == 200
    finally:
        await first.close()
        await second.close()


async def test_a_form_posted_after_the_session_ended_goes_back_to_its_page_via_sign_in(
    browser_for: Any, console_service: Service
) -> None:
    """Not a bare English "login required": the sign-in form says the session ended (what
    was typed is kept by the page's script), then brings the member back to the page the
    form was on."""
    from tests.staff.conftest import queued

    conversation_id = await queued(console_service)
    browser = await browser_for("agent")
    page = f"/staff/conversations/{conversation_id}"
    await browser.post(f"{page}/claim")
    async with console_service.db.session() as session:
        await session.execute(StaffSession.__table__.delete())
    posted = await browser.client.post(
        f"{page}/reply",
        data={"text": "سأراجع طلبك", "csrf": browser.csrf},
        headers={"Referer": f"http://testserver{page}?error=empty"},
    )
    assert posted.status_code == 303
    assert posted.headers["location"] == f"/staff/login?next={page}&expired=1"
    login = await browser.get(posted.headers["location"])
    assert login.status_code == 200 and 'data-testid="login-notice"' in login.text
    assert "انتهت جلستك" in login.text and f'name="next" value="{page}"' in login.text
    # Without the Referer, the page is the form's address less the action.
    bare = await browser.client.post(f"{page}/note", data={"text": "x", "csrf": browser.csrf})
    assert bare.headers["location"] == f"/staff/login?next={page}&expired=1"
    # Someone who never signed in is sent to the form without the notice.
    anonymous = await browser_for()
    fresh = await anonymous.post(f"{page}/reply", {"text": "x"}, csrf=False)
    assert fresh.headers["location"] == f"/staff/login?next={page}"
    assert 'data-testid="login-notice"' not in (await anonymous.get(fresh.headers["location"])).text
