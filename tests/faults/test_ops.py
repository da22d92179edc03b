"""Readiness and metrics, each app with its own registry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from bot.app import create_app
from bot.ops import CONNECTED, FAILING, STANDBY, WEBHOOK, channel_states
from bot.service import Service
from conversations.messages import Channel
from storage.migrate import upgrade
from storage.models import Conversation, utcnow
from tests.conftest import Chat, make_config
from tests.faults.conftest import samples


async def test_metrics_count_per_app_and_readiness_reflects_migrations(tmp_path: Path) -> None:
    fresh = Service(make_config(tmp_path / "a"))
    other = Service(make_config(tmp_path / "b"))
    await upgrade(other.db.engine)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(fresh, workers=False)),
            base_url="http://t",
        ) as http:
            assert (await http.get("/healthz")).status_code == 200
            not_ready = await http.get("/readyz")
            assert not_ready.status_code == 503 and not_ready.json()["migrations"] is False

        await Chat(other, Channel.WEBCHAT, "v1").say("السلام عليكم")
        await Chat(other, Channel.WEBCHAT, "v2").say("السلام عليكم")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(other, workers=False)),
            base_url="http://t",
        ) as http:
            assert (await http.get("/readyz")).json()["status"] == "ready"
            got = samples((await http.get("/metrics")).text)
        assert got[("tawasul_messages_in_total", (("channel", "webchat"),))] == 2
        assert got[("tawasul_processing_seconds_count", ())] == 2
        # Web chat replies wait until the page fetches them, counted apart from the others.
        assert got[("tawasul_outbox_items", (("channel", "webchat"), ("status", "pending")))] >= 2
        assert got[("tawasul_staff_queue", ())] == 0
        # The first app's registry saw none of this.
        assert not [
            k for k in samples(fresh.metrics.render().decode()) if k[0].endswith("_in_total")
        ]
    finally:
        await fresh.close()
        await other.close()


async def test_staff_queue_length_and_wait_and_channel_links(tmp_path: Path) -> None:
    service = Service(make_config(tmp_path))
    await upgrade(service.db.engine)
    try:
        waiting = Chat(service, Channel.WEBCHAT, "v1")
        await waiting.say("مرحبا")
        await waiting.say("موظف")
        await Chat(service, Channel.WEBCHAT, "v2").say("مرحبا")  # stays with the bot
        async with service.db.session() as s:
            conversation = await s.scalar(
                select(Conversation).where(Conversation.status == "queued")
            )
            assert conversation is not None
            conversation.queued_at = utcnow() - timedelta(minutes=7)

        # A link held here and working, one held elsewhere, one held here but failing.
        service.metrics.link("telegram", CONNECTED)
        service.metrics.link("email", STANDBY)
        failing = service.metrics.link("imap-other", CONNECTED)
        failing.failing = lambda: True
        app = create_app(service, workers=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            got = samples((await http.get("/metrics")).text)
            ready = (await http.get("/readyz")).json()
        assert got[("tawasul_staff_queue", ())] == 1
        assert got[("tawasul_staff_queue_oldest_seconds", ())] >= 7 * 60
        assert got[("tawasul_channel_connected", (("channel", "telegram"),))] == 1
        assert got[("tawasul_channel_connected", (("channel", "email"),))] == 0
        assert got[("tawasul_channel_connected", (("channel", "imap-other"),))] == 0
        # Only configured channels are listed; a provider's state never makes it unready.
        assert ready["channels"] == {"webchat": "webhook"}
        assert ready["status"] == "ready"
        assert channel_states(service.metrics, ["email", "imap-other", "whatsapp"]) == {
            "email": STANDBY,
            "imap-other": FAILING,
            "whatsapp": WEBHOOK,
        }
    finally:
        await service.close()
