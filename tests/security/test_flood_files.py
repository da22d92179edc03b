"""A file sent with a message that is not stored (its sender is flooding, or it is a repeat)
is not left on disk: nothing would ever name it, show it to staff or remove it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from bot.security import Verdict, flood_guard
from bot.service import Service
from conversations.messages import Channel, Inbound
from tests.security.test_attachments import PDF
from tests.twilio.conftest import Phone, TwilioSetup

NUMBER = "+966551234567"


def kept_files(service: Service) -> list[Path]:
    root = Path(service.config.storage.attachments_dir)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def block(service: Service, kind: str, address: str) -> None:
    guard = flood_guard(service)
    for _ in range(guard.limits.block_after + 1):
        if guard.check(kind, address)[0] is Verdict.BLOCK:
            return
    raise AssertionError("the sender was not blocked")


async def test_a_blocked_web_chat_sessions_upload_leaves_no_file(
    http: httpx.AsyncClient, service: Service
) -> None:
    await http.post("/api/webchat/start", json={"lang": "ar"})
    uploaded = await http.post(
        "/api/webchat/upload", files={"file": ("هوية.pdf", PDF, "application/pdf")}
    )
    assert uploaded.status_code == 200, uploaded.text
    before = kept_files(service)
    assert len(before) == 1  # taken while the session was welcome

    block(service, "webchat", http.cookies["tawasul_chat"])
    for _ in range(3):
        refused = await http.post(
            "/api/webchat/upload", files={"file": ("هوية.pdf", PDF, "application/pdf")}
        )
        assert refused.status_code == 200 and refused.json()["messages"] == []
    assert kept_files(service) == before


async def test_a_blocked_numbers_photos_leave_no_file(twilio_setup: TwilioSetup) -> None:
    service = twilio_setup.service
    block(service, "phone", NUMBER)
    phone = Phone(twilio_setup, NUMBER)
    pdf = twilio_setup.fake.add_media(PDF, "application/pdf")
    await phone.say("مرفق", media=[(pdf, "application/pdf")])
    assert kept_files(service) == []


async def test_a_repeat_that_is_not_stored_leaves_no_file(service: Service) -> None:
    """Two deliveries of one message at once, each with its own copy of the file: the copy
    of the one not stored is removed, the stored one's kept."""

    async def copy() -> Inbound:
        attachment = await service.files.save_bytes(
            PDF, declared_type="application/pdf", filename="a.pdf", max_bytes=1 << 20
        )
        return Inbound(
            Channel.TELEGRAM, "7001", attachments=(attachment,), channel_message_id="7001:1"
        )

    first, second = await copy(), await copy()
    assert await service.receive(first) is not None
    assert await service.receive(second) is None
    assert kept_files(service) == [service.files.path(first.attachments[0].ref)]


async def test_a_message_the_database_could_not_store_leaves_no_file(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not stored, so not acknowledged: the channel sends it again and its file is fetched
    anew; the copy of the failed attempt would be named by nothing."""
    attachment = await service.files.save_bytes(
        PDF, declared_type="application/pdf", filename="a.pdf", max_bytes=1 << 20
    )
    msg = Inbound(Channel.TELEGRAM, "7002", attachments=(attachment,), channel_message_id="7002:1")

    async def failing(*_: object, **__: object) -> None:
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(service.group, "run", failing)
    with pytest.raises(OperationalError):
        await service.receive(msg)
    assert kept_files(service) == []
