"""Readiness and metrics, each app with its own registry."""

from __future__ import annotations

from pathlib import Path

import httpx

from bot.app import create_app
from bot.service import Service
from conversations.messages import Channel
from storage.migrate import upgrade
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
        assert got[("tawasul_outbox_items", (("status", "pending"),))] >= 2
        assert got[("tawasul_staff_queue", ())] == 0
        # The first app's registry saw none of this.
        assert not [
            k for k in samples(fresh.metrics.render().decode()) if k[0].endswith("_in_total")
        ]
    finally:
        await fresh.close()
        await other.close()
