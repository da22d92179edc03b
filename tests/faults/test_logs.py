"""JSON logs of a running server: every line one JSON object, and every line written while a
message is processed or a reply delivered names its conversation (and never a number)."""

from __future__ import annotations

import json

import httpx

from bot.service import Service
from tests.faults.conftest import (
    FaultyTwilio,
    RoundRobin,
    Server,
    post_twilio,
    settled,
    web_visitor,
    whatsapp,
)

NUMBERS = ["+966501220001", "+966501220002"]
SCRIPT = ["السلام عليكم", "٣", "ما أوقات الدوام؟", "القائمة", "شكرا"]


async def test_every_line_is_json_and_message_work_names_its_conversation(
    server: Server, faulty_twilio: FaultyTwilio, observer: Service
) -> None:
    server.env["TAWASUL_LOGGING_LEVEL"] = "debug"
    await server.start()
    faulty_twilio.unavailable = True  # the first replies are retried: more lines to check
    async with httpx.AsyncClient(base_url=server.base, timeout=5) as http:
        for n, text in enumerate(SCRIPT):
            for number in NUMBERS:
                form = whatsapp(number, text, f"SM{number[-4:]}{n:028d}")
                assert (await post_twilio(http, form)).status_code == 200
                if n == 0:  # Twilio sends it again: recognised, not processed twice
                    assert (await post_twilio(http, form)).status_code == 200
            if n == 1:
                faulty_twilio.unavailable = False
        await web_visitor(RoundRobin([server]), [], count=3)
        await settled(observer, 30)
    assert await server.terminate() in (0, -15)

    raw = server.log.read_text()
    lines = [line for line in raw.splitlines() if line.strip()]
    events = []
    for line in lines:
        event = json.loads(line)  # every line, ours, uvicorn's and the start-up notices
        assert isinstance(event, dict) and "event" in event and "level" in event, line
        events.append(event)

    about_a_message = [e for e in events if "message_id" in e or "outbox_id" in e]
    names = {e["event"] for e in about_a_message}
    assert {"inbound.processed", "outbox.retry"} <= names, names
    for event in about_a_message:
        assert isinstance(event.get("conversation_id"), int), event
    assert len({e["conversation_id"] for e in about_a_message}) >= len(NUMBERS) + 1

    # Ids and counts only: no phone number, no message text.
    for number in NUMBERS:
        assert number[4:] not in raw
    for text in SCRIPT[2:]:
        assert text not in raw
