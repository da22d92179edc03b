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


def history(client: httpx.Client) -> list[dict]:
    """The whole conversation, the visitor's messages too, as a reopened page shows it."""
    return start(client)["messages"]


def test_a_message_sent_again_after_its_answer_was_lost_is_taken_once(
    client: httpx.Client,
) -> None:
    """The page sends a message again when its request failed (a dropped connection, its
    timeout, a proxy's 5xx), and the first may have been stored and answered: with the
    page's id for it, the second is neither stored nor processed again (a form's answer
    would otherwise answer the next question too), and is answered with the first's
    replies."""
    start(client)
    body = {"text": "٢", "client_id": "0f8e2c1a-5b7d-4e9f-a3c6-2d1b0e9f8a7c"}
    first = client.post("/api/webchat/messages", json=body)
    again = client.post("/api/webchat/messages", json=body)
    assert first.status_code == again.status_code == 200, again.text
    replies = [m["id"] for m in first.json()["messages"]]
    assert replies and [m["id"] for m in again.json()["messages"]] == replies
    mine = [m["text"] for m in history(client) if m["from"] == "user"]
    assert mine == ["٢"], f"the one message typed is stored {len(mine)} times"


def test_a_file_sent_again_is_taken_once(client: httpx.Client) -> None:
    start(client)
    form = {"client_id": "d2c4b6a8e0f1"}
    file = {"file": ("salary.pdf", PDF, "application/pdf")}
    first = client.post("/api/webchat/upload", files=file, data=form)
    again = client.post("/api/webchat/upload", files=file, data=form)
    assert first.status_code == again.status_code == 200, again.text
    assert [m["id"] for m in again.json()["messages"]] == [
        m["id"] for m in first.json()["messages"]
    ]
    files = [m for m in history(client) if m["from"] == "user"]  # the file, no text
    assert len(files) == 1


def test_the_pages_id_for_a_message_is_its_sessions_own(live_server: str) -> None:
    """Two visitors' pages that happen to give the same id each have their message taken."""
    body = {"text": "مرحبا", "client_id": "same-id-in-two-browsers"}
    for _ in range(2):
        with httpx.Client(base_url=live_server, timeout=10) as visitor:
            start(visitor)
            assert visitor.post("/api/webchat/messages", json=body).json()["messages"]
            assert [m["text"] for m in history(visitor) if m["from"] == "user"] == ["مرحبا"]


def test_a_page_that_sends_no_id_is_answered_as_before(client: httpx.Client) -> None:
    """A page cached before the ids were sent: each request is a message of its own."""
    start(client)
    for _ in range(2):
        assert client.post("/api/webchat/messages", json={"text": "القائمة"}).json()["messages"]
    assert [m["text"] for m in history(client) if m["from"] == "user"] == ["القائمة"] * 2


@pytest.mark.parametrize("client_id", ["short", "x" * 65, "../../etc", "id with spaces"])
def test_a_malformed_message_id_is_refused_clearly(client: httpx.Client, client_id: str) -> None:
    start(client)
    sent = client.post("/api/webchat/messages", json={"text": "hi", "client_id": client_id})
    assert sent.status_code == 422 and sent.json()["error"] == "invalid_request"
    assert "client_id" in sent.json()["message"]
    uploaded = client.post(
        "/api/webchat/upload",
        files={"file": ("a.pdf", PDF, "application/pdf")},
        data={"client_id": client_id},
    )
    assert uploaded.status_code == 422 and "client_id" in uploaded.json()["message"]
    assert all(m["from"] == "bot" for m in history(client))


def test_a_message_sent_again_later_is_answered_with_its_own_replies(
    client: httpx.Client,
) -> None:
    """Sent again after the visitor wrote on (another tab, a page that kept it): the answer
    is what that message got, not the replies to the later ones."""
    start(client)
    body = {"text": "القائمة", "client_id": "a1b2c3d4e5f6a7b8"}
    first = client.post("/api/webchat/messages", json=body).json()["messages"]
    later = client.post("/api/webchat/messages", json={"text": "٢", "client_id": "c9d8e7f6a5b4"})
    assert later.json()["messages"]
    again = client.post("/api/webchat/messages", json=body).json()["messages"]
    assert [m["id"] for m in again] == [m["id"] for m in first]
