"""The web-chat API over real HTTP against `tawasul serve`."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.service import Service

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def client(live_server: str) -> httpx.Client:
    with httpx.Client(base_url=live_server, timeout=10) as c:
        yield c


def start(client: httpx.Client, lang: str = "ar") -> dict:
    response = client.post("/api/webchat/start", json={"lang": lang})
    assert response.status_code == 200, response.text
    return response.json()


def test_page_is_right_to_left_arabic(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'dir="rtl"' in page.text and 'lang="ar"' in page.text
    assert client.get("/static/webchat/chat.js").status_code == 200


def test_start_greets_and_sets_an_httponly_cookie(client: httpx.Client) -> None:
    response = client.post("/api/webchat/start", json={"lang": "ar"})
    assert "httponly" in response.headers["set-cookie"].lower()
    body = response.json()
    assert body["messages"][0]["from"] == "bot"
    assert body["messages"][-1]["choices"]
    again = start(client)  # the same session: history, no second greeting
    assert [m["id"] for m in again["messages"]] == [m["id"] for m in body["messages"]]


def test_conversation_and_poll(client: httpx.Client) -> None:
    first = start(client)
    reply = client.post("/api/webchat/messages", json={"text": "٣"}).json()
    assert reply["messages"] and reply["cursor"] > first["cursor"]
    assert (
        client.get("/api/webchat/messages", params={"after": reply["cursor"]}).json()["messages"]
        == []
    )
    everything = client.get("/api/webchat/messages", params={"after": 0}).json()["messages"]
    assert all(m["from"] == "bot" for m in everything) and len(everything) >= 3


def test_english_start(client: httpx.Client) -> None:
    body = start(client, "en")
    # Welcomed in English, as a first visit in Arabic is in Arabic, and the menu follows.
    first, last = body["messages"][0], body["messages"][-1]
    assert first["text"].startswith("Welcome") and first["lang"] == "en"
    assert last["choices"] and last["lang"] == "en"


def test_upload_within_a_form(client: httpx.Client) -> None:
    start(client)
    for text in ["٤", "١", _nid(), "١", "تغير دخل الأسرة هذا الشهر"]:
        reply = client.post("/api/webchat/messages", json={"text": text}).json()
    assert reply["messages"][-1]["ask"] == "attachment"
    upload = client.post(
        "/api/webchat/upload", files={"file": ("salary.pdf", PDF, "application/pdf")}
    )
    assert upload.status_code == 200, upload.text
    assert "1" in upload.json()["messages"][0]["text"]


def _nid() -> str:
    from tests.conftest import valid_national_id

    return valid_national_id()


def test_upload_of_the_wrong_type_is_refused_clearly(client: httpx.Client) -> None:
    start(client)
    response = client.post(
        "/api/webchat/upload", files={"file": ("x.exe", b"MZ\x90\x00binary", "application/pdf")}
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_type" and response.json()["message"]
    # Each language on its own for the page, and both in ``message`` for a plain client.
    messages = response.json()["messages"]
    assert set(messages) == {"ar", "en"} and "JPEG" in messages["en"]
    assert response.json()["message"] == messages["ar"] + "\n" + messages["en"]


def test_oversized_body_gets_413(client: httpx.Client) -> None:
    start(client)
    big = b"%PDF-" + b"0" * (26 * 1024 * 1024)
    response = client.post(
        "/api/webchat/upload", files={"file": ("big.pdf", big, "application/pdf")}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_malformed_and_unknown_input_get_clear_4xx(client: httpx.Client) -> None:
    start(client)
    bad_json = client.post(
        "/api/webchat/messages", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422 and bad_json.json()["error"] == "invalid_request"
    unknown = client.post("/api/webchat/messages", json={"text": "hi", "admin": True})
    assert unknown.status_code == 422 and "admin" in unknown.json()["message"]
    empty = client.post("/api/webchat/messages", json={"text": "  "})
    assert empty.status_code == 422
    wrong_type = client.post(
        "/api/webchat/messages",
        content=b"text=hi",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert wrong_type.status_code == 422


def test_no_session_is_401(live_server: str) -> None:
    response = httpx.post(f"{live_server}/api/webchat/messages", json={"text": "hi"})
    assert response.status_code == 401 and response.json()["error"] == "no_session"
    forged = httpx.post(
        f"{live_server}/api/webchat/messages",
        json={"text": "hi"},
        cookies={"tawasul_chat": "../../etc/passwd"},
    )
    assert forged.status_code == 401


def test_the_page_carries_the_associations_name_escaped() -> None:
    """The header shows the association's own name (the page's defaults were never
    replaced before), and a name is text, never markup."""
    from typing import Any

    from fastapi import FastAPI

    from adapters.webchat import build_router

    class Backend:
        def page_meta(self) -> dict[str, str]:
            return {
                "tawasul-org-ar": "جمعية البر بالرياض",
                "tawasul-org-en": 'Al-Birr "Riyadh" <Society>',
            }

        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the page needs only page_meta, not {name}")

    app = FastAPI()
    app.include_router(build_router(Backend()))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)

    async def fetch() -> str:
        async with httpx.AsyncClient(transport=transport, base_url="http://chat") as c:
            return (await c.get("/")).text

    page = asyncio.run(fetch())
    assert '<meta name="tawasul-org-ar" content="جمعية البر بالرياض">' in page
    assert (
        '<meta name="tawasul-org-en" content="Al-Birr &quot;Riyadh&quot; &lt;Society&gt;">' in page
    )
    assert "The Association" not in page


async def test_the_chat_cookie_is_secure_behind_the_https_reverse_proxy(
    service: Service,
) -> None:
    """As `tawasul serve` runs (uvicorn trusting the local proxy's X-Forwarded-* headers)."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from bot.app import create_app

    app = ProxyHeadersMiddleware(create_app(service, workers=False), "127.0.0.1")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        proxied = await client.post(
            "/api/webchat/start", json={"lang": "ar"}, headers={"X-Forwarded-Proto": "https"}
        )
        plain = await client.post("/api/webchat/start", json={"lang": "ar"})
    assert "; secure" in proxied.headers["set-cookie"].lower()
    assert "; secure" not in plain.headers["set-cookie"].lower()
