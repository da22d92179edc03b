"""A `tawasul serve` process that can be killed and restarted, and a Twilio that can fail."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from aiohttp import web
from sqlalchemy import select

from bot.channels.twilio import INBOUND_PATH
from bot.service import Service
from storage.models import Message, OutboxItem
from tests.conftest import cli_env, free_port, make_config, run_cli
from tests.twilio.conftest import PUBLIC_URL, SMS_FROM, WHATSAPP_FROM, sign, twilio_form
from tests.twilio.fake import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio


class FaultyTwilio(FakeTwilio):
    """The fake Twilio, which can also hang (gate closed) or answer 503 for a while."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.unavailable = False
        self.in_flight = 0
        self.refused = 0

    async def _create(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        if request.transport is None or request.transport.is_closing():
            # The caller is gone (killed while we hung): Twilio would not have sent it.
            return web.Response(status=499)
        if self.unavailable:
            self.refused += 1
            return self._error(503, 20503, "Service Unavailable")
        return await super()._create(request)


def twilio_env(fake: FakeTwilio) -> dict[str, str]:
    return {
        "TAWASUL_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TAWASUL_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TAWASUL_TWILIO_WHATSAPP_FROM": WHATSAPP_FROM,
        "TAWASUL_TWILIO_SMS_FROM": SMS_FROM,
        "TAWASUL_TWILIO_PUBLIC_BASE_URL": PUBLIC_URL,
        "TAWASUL_TWILIO_API_BASE_URL": fake.base_url,
        "TAWASUL_OUTBOX_BASE_DELAY_SECONDS": "0.2",
        "TAWASUL_OUTBOX_MAX_DELAY_SECONDS": "1",
        "TAWASUL_OUTBOX_POLL_SECONDS": "0.2",
        "TAWASUL_LOGGING_FORMAT": "json",
    }


class Server:
    """`tawasul serve` on a fixed port over one database, started and stopped at will."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = cli_env(tmp, **env)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.log = tmp / "server.log"

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "serve",
                "--port",
                str(self.port),
                cwd=self.tmp,
                env=self.env,
                stdout=out,
                stderr=out,
            )
        async with httpx.AsyncClient(timeout=1) as http:
            for _ in range(300):
                if self.proc.returncode is not None:
                    break
                try:
                    if (await http.get(f"{self.base}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("tawasul serve did not become ready:\n" + self.log.read_text()[-3000:])

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def post_twilio(http: httpx.AsyncClient, form: dict[str, str]) -> httpx.Response:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(PUBLIC_URL + INBOUND_PATH, form),
    }
    return await http.post(INBOUND_PATH, content=urlencode(form), headers=headers)


def whatsapp(number: str, body: str, sid: str) -> dict[str, str]:
    return twilio_form("whatsapp:" + number, body, sid=sid)


@pytest.fixture
async def faulty_twilio() -> AsyncIterator[FaultyTwilio]:
    fake = FaultyTwilio()
    await fake.start()
    yield fake
    fake.gate.set()
    await fake.stop()


@pytest.fixture
async def server(tmp_path: Path, faulty_twilio: FaultyTwilio) -> AsyncIterator[Server]:
    await asyncio.to_thread(run_cli, tmp_path, "db", "upgrade")
    srv = Server(tmp_path, twilio_env(faulty_twilio))
    yield srv
    await srv.stop()


@pytest.fixture
async def observer(tmp_path: Path) -> AsyncIterator[Service]:
    """The same database, read from the test (never the server's own objects)."""
    svc = Service(make_config(tmp_path))
    yield svc
    await svc.close()


async def settled(svc: Service, seconds: float) -> list[OutboxItem]:
    """Wait until nothing is pending or being sent; the outbox as it then is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        async with svc.db.session(write=False) as s:
            items = list(await s.scalars(select(OutboxItem).order_by(OutboxItem.id)))
            unprocessed = await s.scalar(
                select(Message.id).where(Message.direction == "in", Message.processed_at.is_(None))
            )
        # Web-chat replies count as delivered when the page shows them, not here.
        busy = [i for i in items if i.status in ("pending", "sending") and i.channel != "webchat"]
        if not busy and unprocessed is None:
            return items
        if loop.time() > deadline:
            raise AssertionError(
                f"not settled: {len(busy)} outbox items busy, unprocessed={unprocessed}"
            )
        await asyncio.sleep(0.2)
