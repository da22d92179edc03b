"""Webhook mode through the real `tawasul serve` application, and the webhook commands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from bot.app import create_app
from bot.service import Service
from storage.models import Message, OutboxItem
from tests.conftest import cli_env, free_port, run_cli
from tests.telegram import payloads
from tests.telegram.conftest import TelegramUser, make_service
from tests.telegram.fake_bot_api import TOKEN, FakeBotAPI

SECRET = "s3cret_Webhook-token"


@dataclass
class Served:
    service: Service
    base: str
    env: dict[str, str]


@pytest.fixture
async def served(tmp_path: Path, fake_api: FakeBotAPI) -> AsyncIterator[Served]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = await make_service(
        tmp_path, fake_api, mode="webhook", webhook_secret=SECRET, public_base_url=base
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.02)
    env = cli_env(
        tmp_path,
        TAWASUL_TELEGRAM_TOKEN=TOKEN,
        TAWASUL_TELEGRAM_API_BASE_URL=fake_api.base_url,
        TAWASUL_TELEGRAM_FILE_BASE_URL=fake_api.file_base_url,
        TAWASUL_TELEGRAM_MODE="webhook",
        TAWASUL_TELEGRAM_WEBHOOK_SECRET=SECRET,
        TAWASUL_TELEGRAM_PUBLIC_BASE_URL=base,
    )
    yield Served(service, base, env)
    server.should_exit = True
    await asyncio.wait_for(task, 15)  # the app's lifespan closes the service


async def cli(tmp: Path, env: dict[str, str], *args: str, check: bool = True) -> Any:
    return await asyncio.to_thread(run_cli, tmp, "telegram", *args, env=env, check=check)


async def stored(service: Service) -> tuple[int, int]:
    """The inbound messages stored, and the replies queued (the bot's replies are messages
    too, stored as soon as the step ran, which may be before or after this is read)."""
    async with service.db.session(write=False) as session:
        messages = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
        replies = await session.scalar(select(func.count()).select_from(OutboxItem))
    return int(messages or 0), int(replies or 0)


async def test_set_webhook_and_a_conversation_over_it(
    tmp_path: Path, fake_api: FakeBotAPI, served: Served
) -> None:
    result = await cli(tmp_path, served.env, "set-webhook")
    assert f"{served.base}/webhooks/telegram" in result.stdout
    assert fake_api.webhook == {"url": f"{served.base}/webhooks/telegram", "secret_token": SECRET}
    set_call = fake_api.calls_of("setWebhook")[-1]
    assert set_call.params["allowed_updates"] == '["message", "callback_query"]'

    async def over_webhook(update: dict[str, Any]) -> None:
        response = await fake_api.deliver(update)
        assert response.status_code == 200, response.text

    user = TelegramUser(fake_api, served.service, transport=over_webhook)
    await user.say("/start")
    assert "apply" in user.button_values()
    await user.press("apply")
    await user.press("yes")
    assert "(1/" in user.text
    question = user.text
    replies = await user.send(payloads.voice(user.id))
    unsupported = served.service.catalog.text("ar", "channel.unsupported")
    assert [r.text for r in replies] == [unsupported, question]  # told, and asked again

    again = payloads.text(user.id, "محمد عبدالله القحطاني", update_id=fake_api.new_update_id())
    await user.send(again)
    assert "(2/" in user.text
    before = await stored(served.service)
    assert await user.send(dict(again)) == []  # Telegram delivered it twice: handled once
    assert await stored(served.service) == before

    # The server published its commands and left the webhook alone.
    assert set(fake_api.commands) == {"", "ar", "en"}
    assert fake_api.calls_of("deleteWebhook") == []
    assert fake_api.calls_of("getUpdates") == []

    await cli(tmp_path, served.env, "delete-webhook")
    assert fake_api.webhook is None


async def test_a_forged_or_missing_secret_is_refused_and_nothing_is_stored(
    fake_api: FakeBotAPI, served: Served
) -> None:
    update = payloads.text(7001, "السلام عليكم")
    update["update_id"] = 77
    url = f"{served.base}/webhooks/telegram"
    async with httpx.AsyncClient() as client:
        forged = await client.post(
            url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}
        )
        missing = await client.post(url, json=update)
        near = await client.post(
            url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"}
        )
        assert (forged.status_code, missing.status_code, near.status_code) == (403, 403, 403)
        await asyncio.sleep(0.3)
        assert await stored(served.service) == (0, 0)
        assert fake_api.sent() == []

        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        junk = await client.post(url, content=b"not json", headers=headers)
        not_update = await client.post(url, json={"hello": 1}, headers=headers)
        assert (junk.status_code, not_update.status_code) == (400, 400)
        genuine = await client.post(url, json=update, headers=headers)
        assert genuine.status_code == 200
    assert (await stored(served.service))[0] == 1


async def test_set_webhook_needs_a_secret_and_a_good_token(
    tmp_path: Path, fake_api: FakeBotAPI
) -> None:
    env = cli_env(
        tmp_path,
        TAWASUL_TELEGRAM_TOKEN=TOKEN,
        TAWASUL_TELEGRAM_API_BASE_URL=fake_api.base_url,
    )
    no_secret = await cli(tmp_path, env, "set-webhook", check=False)
    assert no_secret.returncode != 0 and "webhook_secret" in no_secret.stderr
    env["TAWASUL_TELEGRAM_WEBHOOK_SECRET"] = SECRET
    bad_token = dict(env, TAWASUL_TELEGRAM_TOKEN="999:wrong")
    refused = await cli(
        tmp_path, bad_token, "set-webhook", "--url", "https://x.test/w", check=False
    )
    assert refused.returncode != 0 and "token was rejected" in refused.stderr
    assert "999:wrong" not in refused.stderr  # the token never shows
    assert fake_api.webhook is None
