"""Telegram: long polling or a webhook; each update stored once, replies through the outbox."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import structlog

from adapters.telegram import TelegramApi
from bot.channels.telegram.channel import StaffGroupSink, TelegramChannel
from bot.channels.telegram.cli import telegram_group
from bot.channels.telegram.webhook import WEBHOOK_PATH, webhook_router
from bot.ops import linked
from bot.service import Service
from conversations.messages import Channel
from storage.locks import singleton_task

if TYPE_CHECKING:
    from bot.channels import ChannelRuntime

__all__ = ["WEBHOOK_PATH", "TelegramChannel", "install", "telegram_group"]

log = structlog.get_logger("tawasul.telegram")


def install(service: Service, runtime: ChannelRuntime) -> None:
    config = service.config.telegram
    if not config.enabled:
        return
    # httpx logs each request's URL at INFO, and the Bot API's URLs hold the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    api = TelegramApi(
        config.token, api_base_url=config.api_base_url, file_base_url=config.file_base_url
    )
    channel = TelegramChannel(service, api)
    runtime.senders[Channel.TELEGRAM.value] = api.sender(
        share_phone_label={
            lang: service.catalog.text(lang, "channel.share_phone") for lang in ("ar", "en")
        },
        attachment_path=service.files.path,
        per_chat_per_second=config.per_chat_per_second,
        overall_per_second=config.global_per_second,
    )
    if config.mode == "webhook":
        if not config.webhook_secret:
            log.error("telegram.no_webhook_secret")  # every webhook call is refused until set
        runtime.routers.append(webhook_router(channel, config.webhook_secret))
        runtime.tasks.append(channel.publish_commands)
    else:
        # One instance polls at a time (Telegram refuses two), another takes over if it dies.
        polling = linked(service.metrics.link("telegram"), channel.poll)
        runtime.tasks.append(singleton_task(service.db, "telegram:polling", polling))
    if config.staff_group_id is not None:
        runtime.staff_sinks.append(StaffGroupSink(api, config.staff_group_id))
    runtime.closers.append(api.close)
    runtime.enabled.append("telegram")
