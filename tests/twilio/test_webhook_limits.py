"""The Twilio webhooks read a body only up to what Twilio ever sends: a large one, signed or
not, is refused before it is read in full or parsed, so that no one can hold the event loop
(and every other beneficiary) by posting megabytes of form fields."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from adapters.twilio import inbound
from bot.channels.twilio import INBOUND_PATH, MAX_FORM_BYTES, STATUS_PATH
from storage.models import Message
from tests.twilio.conftest import PUBLIC_URL, TwilioSetup, sign, twilio_form

NUMBER = "+966551234567"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# What the reviewer posted: 24 MB of empty fields, under the server's 25 MB limit.
FLOOD = b"a=&" * 8_000_000


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The sizes of the bodies the webhooks split into fields."""
    seen: list[int] = []
    real = inbound.parse_qsl

    def spy(text: str, *args: object, **kwargs: object) -> list[tuple[str, str]]:
        seen.append(len(text))
        return real(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(inbound, "parse_qsl", spy)
    yield seen


async def stored(setup: TwilioSetup) -> int:
    async with setup.service.db.session(write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


@pytest.mark.parametrize("path", [INBOUND_PATH, STATUS_PATH])
async def test_a_huge_body_is_refused_by_its_length_unread(
    twilio_setup: TwilioSetup, parses: list[int], path: str
) -> None:
    started = time.perf_counter()
    response = await twilio_setup.http.post(
        path, content=FLOOD, headers={**FORM, "X-Twilio-Signature": "forged"}
    )
    assert time.perf_counter() - started < 1
    assert response.status_code == 413, response.text
    assert f"a Twilio webhook body is at most {MAX_FORM_BYTES} bytes" in response.text
    assert parses == []


async def test_a_huge_body_without_a_length_is_cut_off_as_it_streams(
    twilio_setup: TwilioSetup, parses: list[int]
) -> None:
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(len(FLOOD) // (16 * 1024)):
            pulled += 1
            yield FLOOD[: 16 * 1024]

    started = time.perf_counter()
    response = await twilio_setup.http.post(
        INBOUND_PATH, content=chunks(), headers={**FORM, "X-Twilio-Signature": "forged"}
    )
    assert time.perf_counter() - started < 1
    assert response.status_code == 413, response.text
    assert pulled <= MAX_FORM_BYTES // (16 * 1024) + 2  # what it took to pass the limit
    assert parses == []


async def test_a_form_of_too_many_fields_is_not_split_into_them(
    twilio_setup: TwilioSetup, parses: list[int]
) -> None:
    body = b"a=&" * (MAX_FORM_BYTES // 3 - 10)  # under the size limit, 20,000 fields
    response = await twilio_setup.http.post(
        INBOUND_PATH, content=body, headers={**FORM, "X-Twilio-Signature": "forged"}
    )
    assert response.status_code == 400, response.text
    assert "more than 200 fields" in response.text
    assert parses == [len(body)]  # counted, then refused


async def test_the_largest_message_twilio_sends_is_still_taken(
    twilio_setup: TwilioSetup,
) -> None:
    """An MMS with its ten files and a 1,600-character Arabic text, correctly signed."""
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    media = [(twilio_setup.fake.add_media(pdf, "application/pdf"), "application/pdf")] * 10
    form = twilio_form(NUMBER, "ب" * 1600, media=media)
    body = urlencode(form)
    assert 16 * 1024 < len(body) * 2 < MAX_FORM_BYTES  # room to spare, twice over
    response = await twilio_setup.post(INBOUND_PATH, form)
    assert response.status_code == 200, response.text
    assert await stored(twilio_setup) == 1


async def test_the_whole_server_refuses_the_flood_and_keeps_answering(
    twilio_setup: TwilioSetup, parses: list[int]
) -> None:
    """Through the application as `tawasul serve` builds it, behind its 25 MB limit."""
    from bot.app import create_app

    app = create_app(twilio_setup.service, workers=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.post(
            INBOUND_PATH, content=FLOOD, headers={**FORM, "X-Twilio-Signature": "forged"}
        )
        assert response.status_code == 413
        assert (await http.get("/healthz")).status_code == 200
        form = twilio_form(NUMBER, "السلام عليكم")
        signed = {**FORM, "X-Twilio-Signature": sign(PUBLIC_URL + INBOUND_PATH, form)}
        assert (await http.post(INBOUND_PATH, content=urlencode(form), headers=signed)).is_success
    assert parses and max(parses) < MAX_FORM_BYTES


@pytest.mark.parametrize("count", ["²", "١", "1e3", "99999999999999999999999"])
async def test_a_signed_form_with_an_odd_count_of_files_is_refused_not_a_500(
    twilio_setup: TwilioSetup, count: str
) -> None:
    form = {**twilio_form(NUMBER, "hi"), "NumMedia": count}
    response = await twilio_setup.post(INBOUND_PATH, form)
    assert response.status_code == 400, response.text
    assert "NumMedia" in response.text
