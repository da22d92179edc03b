"""`tawasul telegram set-webhook` and `delete-webhook`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import click

from adapters.telegram import ApiFailed, TelegramApi
from bot.channels.telegram.webhook import WEBHOOK_PATH

T = TypeVar("T")


@click.group("telegram")
def telegram_group() -> None:
    """The Telegram bot's webhook (polling needs no command)."""


def _require_token(obj: Any) -> None:
    if not obj.config.telegram.token:
        raise click.ClickException("[telegram] token is not set (TAWASUL_TELEGRAM_TOKEN)")


def _api(obj: Any) -> TelegramApi:
    config = obj.config.telegram
    _require_token(obj)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return TelegramApi(
        config.token, api_base_url=config.api_base_url, file_base_url=config.file_base_url
    )


def _call(api: TelegramApi, work: Awaitable[T]) -> T:
    async def run() -> T:
        try:
            return await work
        finally:
            await api.close()

    try:
        return asyncio.run(run())
    except ApiFailed as exc:
        raise click.ClickException(f"Telegram refused: {exc.reason}") from None


@telegram_group.command("set-webhook")
@click.option("--url", help="The public URL (default: [telegram] public_base_url + the path).")
@click.option("--drop-pending", is_flag=True, help="Discard updates Telegram still holds.")
@click.option(
    "--max-connections",
    type=click.IntRange(1, 100),
    default=40,
    show_default=True,
    help="Webhook calls Telegram may make at once.",
)
@click.pass_obj
def set_webhook(obj: Any, url: str | None, drop_pending: bool, max_connections: int) -> None:
    """Tell Telegram to send updates to this server's /webhooks/telegram."""
    config = obj.config.telegram
    _require_token(obj)  # without a token, that is what to set first
    if not config.webhook_secret:
        raise click.ClickException(
            "[telegram] webhook_secret is not set (TAWASUL_TELEGRAM_WEBHOOK_SECRET); "
            "use letters, digits, _ and -, up to 256 characters"
        )
    if not url:
        if not config.public_base_url:
            raise click.ClickException("give --url, or set [telegram] public_base_url")
        url = config.public_base_url.rstrip("/") + WEBHOOK_PATH
    if not url.startswith("https://"):
        click.echo("Note: Telegram's own servers only call https:// webhooks.", err=True)
    api = _api(obj)
    _call(
        api,
        api.set_webhook(
            url,
            secret_token=config.webhook_secret,
            drop_pending_updates=drop_pending,
            max_connections=max_connections,
        ),
    )
    click.echo(f"Webhook set: {url}")
    if config.mode != "webhook":
        click.echo('Set [telegram] mode = "webhook" so the server stops polling.', err=True)


@telegram_group.command("delete-webhook")
@click.option("--drop-pending", is_flag=True, help="Discard updates Telegram still holds.")
@click.pass_obj
def delete_webhook(obj: Any, drop_pending: bool) -> None:
    """Stop webhook delivery (polling mode works again)."""
    api = _api(obj)
    _call(api, api.delete_webhook(drop_pending_updates=drop_pending))
    click.echo("Webhook deleted.")
