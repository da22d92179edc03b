"""POST /webhooks/telegram: Telegram's calls, each checked for the secret token first."""

from __future__ import annotations

import secrets

import structlog
from fastapi import APIRouter, HTTPException, Request

from adapters.telegram import BadUpdate
from bot.channels.telegram.channel import TelegramChannel

log = structlog.get_logger("tawasul.telegram")

WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def webhook_router(channel: TelegramChannel, secret: str) -> APIRouter:
    router = APIRouter()
    expected = secret.encode()

    @router.post(WEBHOOK_PATH, include_in_schema=False)
    async def telegram_webhook(request: Request) -> dict[str, bool]:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not expected or not secrets.compare_digest(given, expected):
            log.warning("telegram.webhook_forbidden")
            raise HTTPException(403, "wrong or missing secret token")
        try:
            data = await request.json()
        except ValueError:
            raise HTTPException(400, "the body is not JSON") from None
        try:
            parsed = channel.api.parse_json(data)
        except BadUpdate as exc:
            raise HTTPException(400, str(exc)) from None
        # An error here answers 500 and Telegram sends the update again: nothing is lost.
        await channel.handle(parsed)
        return {"ok": True}

    return router
