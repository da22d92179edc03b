"""With `logging.level = "debug"` the bot's logs say more, never the bot token or what a
beneficiary and the bot wrote: python-telegram-bot logs its API URL (the token is in it)
and the parameters of every call at debug."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from bot.logs import NOISY, NOTICE_LOGGER, setup_logging
from bot.service import Service
from tests.telegram.conftest import Running, TelegramUser
from tests.telegram.fake_bot_api import TOKEN, FakeBotAPI

# The secret part of a token shaped like Telegram's (35 characters after the bot's id).
REAL_SHAPED = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
SECRET = "سؤال-سري-عن-موعد-الصرف"


@pytest.fixture
def debug_logging() -> Iterator[None]:
    before = structlog.get_config()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    named = ("telegram", "telegram.ext", *NOISY, NOTICE_LOGGER)
    levels = {name: logging.getLogger(name).level for name in named}
    propagate = logging.getLogger(NOTICE_LOGGER).propagate
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    notices = logging.getLogger(NOTICE_LOGGER)
    for handler in list(notices.handlers):
        notices.removeHandler(handler)
    notices.propagate = propagate
    structlog.configure(**before)


@pytest.mark.parametrize("fmt", ["console", "json"])
async def test_a_debug_run_logs_neither_the_token_nor_the_texts(
    fake_api: FakeBotAPI,
    tg_service: Service,
    debug_logging: None,
    capfd: pytest.CaptureFixture[str],
    fmt: str,
) -> None:
    setup_logging("debug", fmt)
    async with Running(tg_service):
        user = TelegramUser(fake_api, tg_service)
        await user.say("/start")
        await user.say(SECRET)
    sent = [m.text for m in fake_api.sent(user.id)]
    assert sent
    out, err = capfd.readouterr()
    logged = out + err
    assert "telegram" in logged.lower()  # the run was logged, at debug
    assert TOKEN not in logged and TOKEN.split(":")[1] not in logged
    assert SECRET not in logged
    for text in sent:
        for line in text.splitlines():
            if len(line) > 12:  # a line of the bot's words, not a bare number or button
                assert line not in logged, line


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_token_in_an_error_is_replaced_before_it_is_written(
    debug_logging: None, capfd: pytest.CaptureFixture[str], fmt: str
) -> None:
    setup_logging("debug", fmt)
    url = f"https://api.telegram.org/bot{REAL_SHAPED}/getMe"
    try:
        raise RuntimeError(f"Client error '404 Not Found' for url '{url}'")
    except RuntimeError:
        structlog.get_logger("tawasul.telegram").exception("telegram.poll_error")
        logging.getLogger("some.library").exception("request to %s failed", url)
    _, err = capfd.readouterr()
    assert "telegram.poll_error" in err and "request to" in err
    assert REAL_SHAPED.split(":")[1] not in err
    assert err.count("[redacted]") >= 3
