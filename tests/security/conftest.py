from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from bot.app import create_app
from bot.service import Service
from tests.email.conftest import bot_setup, mail_server, running  # noqa: F401
from tests.staff.conftest import seeded  # noqa: F401
from tests.telegram.conftest import fake_api, polling, tg_service  # noqa: F401
from tests.twilio.conftest import fake_twilio, twilio_setup  # noqa: F401


@pytest.fixture
def app(service: Service) -> FastAPI:
    """The whole application in process, without its background workers."""
    return create_app(service, workers=False)


def browser(app: FastAPI) -> httpx.AsyncClient:
    """One browser: its own cookie jar, talking to the application in process."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=20)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app) as client:
        yield client
