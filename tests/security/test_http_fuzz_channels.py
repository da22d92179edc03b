"""Hostile HTTP past the front doors: every route of a server with Twilio and Telegram
webhooks on and a signed-in administrator, so that generated bodies reach the parsers
behind the signature, the secret token and the CSRF check. Each route gets its share of a
fixed, derandomised budget; none may answer 500."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import create_app
from bot.channels.telegram.webhook import SECRET_HEADER, WEBHOOK_PATH
from bot.channels.twilio import INBOUND_PATH, STATUS_PATH
from bot.service import Service
from tests.conftest import free_port, make_config
from tests.security.test_http_fuzz import CONTENT_TYPES, JSON_VALUES, bodies, fill, routes
from tests.staff.conftest import SECRET, Browser, make_world, seed_copy
from tests.telegram import payloads
from tests.twilio.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    SMS_FROM,
    WHATSAPP_FROM,
    sign,
    twilio_form,
)

BUDGET = 600  # requests in all, spread evenly over the routes
TELEGRAM_SECRET = "fuzz-webhook-secret-0123456789"
STAFF_FIELDS = [
    "active", "canned_id", "confirm", "email", "end", "happened_at", "kind", "message", "next",
    "note", "password", "start", "status", "text", "text_ar", "text_en", "title", "to",
]  # fmt: skip
TWILIO_FIELDS = [
    "From", "To", "Body", "NumMedia", "MessageSid", "SmsMessageSid", "AccountSid",
    "MessageStatus", "ErrorCode", "ProfileName", "WaId", "ButtonPayload", "ButtonText",
    "OptOutType", "MediaUrl0", "MediaContentType0", "MediaUrl1", "NumSegments", "Latitude",
]  # fmt: skip
ODD_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "99999999999999999999",
            "whatsapp:+966500000001",
            "+966500000001",
            "whatsapp:",
            "نعم",
            "٣",
            "2026-13-45",
            "1447-09-01",
            "STOP",
            "إيقاف",
            "delivered",
            "undelivered",
            "image/jpeg",
            "application/pdf",
            "\x00",
            "x" * 5000,
        ]
    ),
)


@pytest.fixture
async def full_service(seeded: Path, tmp_path: Path) -> AsyncIterator[Service]:
    """The console's accounts, Twilio and a Telegram webhook on; providers unreachable."""
    seed_copy(seeded, tmp_path)
    nowhere = f"http://127.0.0.1:{free_port()}"
    service = Service(
        make_config(
            tmp_path,
            staff={"secret_key": SECRET},
            flood={"slow_after": 100_000, "block_after": 100_000},  # the fuzz is no flood
            twilio={
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "whatsapp_from": WHATSAPP_FROM,
                "sms_from": SMS_FROM,
                "public_base_url": PUBLIC_URL,
                "api_base_url": nowhere,
            },
            telegram={
                "token": "123456:FUZZ",
                "mode": "webhook",
                "webhook_secret": TELEGRAM_SECRET,
                "api_base_url": nowhere + "/bot",
                "file_base_url": nowhere + "/file/bot",
            },
        )
    )
    yield service
    await service.close()


@st.composite
def twilio_forms(draw: st.DrawFn, media_url: str) -> dict[str, str]:
    """A real webhook form with some fields changed, dropped or added, or any form at all."""
    values = st.one_of(ODD_VALUES, st.just(media_url))
    changes = draw(st.dictionaries(st.sampled_from(TWILIO_FIELDS) | st.text(max_size=12), values))
    if draw(st.integers(0, 3)) == 0:
        return changes
    sender = draw(st.sampled_from(["whatsapp:+966500000001", "+966500000002"]))
    form = twilio_form(sender, draw(st.text(max_size=30)))
    for key in draw(st.lists(st.sampled_from(sorted(form)), max_size=2)):
        form.pop(key, None)
    return {**form, **changes}


@st.composite
def telegram_updates(draw: st.DrawFn) -> Any:
    """Real update shapes with parts changed, update-like JSON of wrong types, or any JSON."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(JSON_VALUES)
    if kind == 1:
        user_id = draw(st.integers(1, 10**6))
        update = draw(
            st.sampled_from(
                [
                    payloads.text(user_id, draw(st.text(max_size=40))),
                    payloads.text(user_id, "/start " + draw(st.text(max_size=10))),
                    payloads.document(
                        user_id,
                        "f1",
                        name=draw(st.text(max_size=20)),
                        mime="application/pdf",
                        size=10,
                    ),
                    payloads.photo(user_id, "p1", size=draw(st.integers(-1, 10**9))),
                    payloads.voice(user_id),
                ]
            )
        )
        update["update_id"] = draw(st.integers(-(2**31), 2**40))
        message = update["message"]
        for key in draw(st.lists(st.sampled_from(sorted(message)), max_size=2)):
            message[key] = draw(JSON_VALUES)
        return update
    part = st.one_of(JSON_VALUES, st.integers(), st.text(max_size=20))
    chat = draw(
        st.fixed_dictionaries(
            {"id": st.one_of(st.integers(-(2**63), 2**63), st.text(max_size=5))},
            optional={"type": st.sampled_from(["private", "group", "channel", "x"]), "z": part},
        )
    )
    message = draw(
        st.fixed_dictionaries(
            {"message_id": st.integers(-5, 2**40), "chat": st.just(chat)},
            optional={
                "from": st.fixed_dictionaries({"id": st.integers(), "language_code": part}),
                "text": st.text(max_size=50),
                "caption": part,
                "date": part,
                "document": st.fixed_dictionaries(
                    {"file_id": st.text(max_size=10)},
                    optional={"file_size": part, "mime_type": part, "file_name": part},
                ),
                "photo": st.lists(
                    st.fixed_dictionaries(
                        {"file_id": st.text(max_size=8)}, optional={"width": part}
                    ),
                    max_size=3,
                ),
                "contact": st.dictionaries(st.text(max_size=8), part, max_size=3),
            },
        )
    )
    key = draw(st.sampled_from(["message", "edited_message", "callback_query", "my_chat_member"]))
    if key == "callback_query":
        body: Any = {"id": "1", "from": {"id": 1}, "data": draw(part), "message": message}
    else:
        body = message
    return {"update_id": draw(st.integers(-(2**31), 2**40)), key: body}


async def test_every_route_with_valid_credentials_never_answers_500(
    full_service: Service,
) -> None:
    service = full_service
    world = await make_world(service)
    app: FastAPI = create_app(service, workers=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", timeout=30
    ) as client:
        admin = Browser(client, service)
        await admin.sign_in("admin")
        # An event stream signed in stays open for its whole lifetime (20 s): the anonymous
        # fuzz in test_http_fuzz.py covers those routes.
        table = [(m, p) for m, p in routes(app) if not p.startswith("/staff/events/")]
        paths = {path for _, path in table}
        assert {INBOUND_PATH, STATUS_PATH, WEBHOOK_PATH} <= paths
        staff_posts = [p for m, p in table if m == "POST" and p.startswith("/staff")]
        assert len(staff_posts) > 10
        known = {
            "conversation_id": str(world.conversation),
            "reference": world.reference,
            "document_id": str(world.document),
            "message_id": str(world.message),
            "beneficiary_id": str(world.beneficiary),
        }
        loop = asyncio.get_running_loop()
        per_route = max(3, math.ceil(BUDGET / len(table)))
        answered: dict[tuple[str, str], set[int]] = {}

        def request_for(data: st.DataObject, method: str, template: str) -> Any:
            headers: dict[str, str] = {}
            path = template
            for name, value in known.items():
                if "{" + name + "}" in path and data.draw(st.booleans()):
                    path = path.replace("{" + name + "}", value)
            path = fill(path, data.draw)
            if template in (INBOUND_PATH, STATUS_PATH):
                form = data.draw(twilio_forms(service.config.twilio.api_base_url + "/m"))
                if data.draw(st.integers(0, 9)):
                    headers["X-Twilio-Signature"] = sign(PUBLIC_URL + template, form)
                headers["content-type"] = "application/x-www-form-urlencoded"
                content = urlencode(form).encode()
            elif template == WEBHOOK_PATH:
                if data.draw(st.integers(0, 9)):
                    headers[SECRET_HEADER] = TELEGRAM_SECRET
                headers["content-type"] = data.draw(
                    st.sampled_from(["application/json"] * 4 + ["text/plain", ""])
                )
                content = json.dumps(data.draw(telegram_updates())).encode()
                if not data.draw(st.integers(0, 9)):
                    content = data.draw(bodies())
            elif template.startswith("/staff") and method == "POST":
                form = data.draw(
                    st.dictionaries(st.sampled_from(STAFF_FIELDS) | st.text(max_size=8), ODD_VALUES)
                )
                csrf = data.draw(st.sampled_from([admin.csrf] * 4 + ["", "forged"]))
                if csrf:
                    form["csrf"] = csrf
                headers["content-type"] = data.draw(
                    st.sampled_from(["application/x-www-form-urlencoded"] * 4 + ["text/plain"])
                )
                content = urlencode(form).encode()
                if not data.draw(st.integers(0, 9)):
                    content = data.draw(bodies())
                    headers["content-type"] = data.draw(CONTENT_TYPES)
            else:
                headers["content-type"] = data.draw(CONTENT_TYPES)
                content = data.draw(bodies()) if method in ("POST", "PUT", "PATCH") else b""
            params = data.draw(
                st.dictionaries(st.sampled_from(["page", "q", "status"]), ODD_VALUES, max_size=2)
            )
            if template.startswith("/webhooks/"):
                params = {}  # part of the signed URL
            return client.request(
                method,
                path,
                content=content,
                headers=headers,
                params=params,
            )

        def fuzz(method: str, template: str) -> Callable[[], None]:
            @settings(
                max_examples=per_route,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(st.data())
            def one_request(data: st.DataObject) -> None:
                future = asyncio.run_coroutine_threadsafe(request_for(data, method, template), loop)
                response = future.result(timeout=60)
                answered.setdefault((method, template), set()).add(response.status_code)
                where = f"{method} {response.request.url.path} -> {response.status_code}"
                assert response.status_code < 500, where + ": " + response.text[:300]

            return one_request  # type: ignore[no-any-return]

        for method, template in table:
            if template.startswith("/staff"):
                await admin.sign_in("admin")  # a fuzzed logout must not end the run's session
            await asyncio.wait_for(asyncio.to_thread(fuzz(method, template)), timeout=120)

    assert set(answered) == set(table)  # every route was exercised
    # The fuzz got past the doors: signed webhooks and authorised staff forms were accepted.
    assert any(s < 300 for s in answered[("POST", INBOUND_PATH)])
    assert any(s < 300 for s in answered[("POST", WEBHOOK_PATH)])
    assert any(s in (200, 303) for p in staff_posts for s in answered[("POST", p)])


async def test_oversized_bodies_get_413_on_webhooks_and_staff_forms_too(
    full_service: Service,
) -> None:
    app = create_app(full_service, workers=False)
    big = b"a=" + b"b" * (26 * 1024 * 1024)  # over the default 25 MB server limit
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        posts = [p for m, p in routes(app) if m == "POST"]
        assert {INBOUND_PATH, STATUS_PATH, WEBHOOK_PATH} <= set(posts)
        for path in posts:
            response = await client.post(
                path, content=big, headers={"content-type": "application/x-www-form-urlencoded"}
            )
            assert response.status_code == 413, path
