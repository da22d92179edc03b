"""A `tawasul serve` process that can be killed and restarted, and a Twilio that can fail."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import signal
import sys
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bot.channels.twilio import INBOUND_PATH
from bot.service import Service
from storage.models import Identity, Message, OutboxItem
from tests.conftest import cli_env, free_port, make_config, run_cli
from tests.telegram.conftest import telegram_settings
from tests.telegram.fake_bot_api import Failure, FakeBotAPI
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


class FaultyBotAPI(FakeBotAPI):
    """The fake Telegram Bot API, whose sending methods can also hang or answer 503."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.unavailable = False
        self.refused = 0

    def _faulty(self, send: Callable[[dict[str, Any]], Any], params: dict[str, Any]) -> Any:
        self.gate.wait(timeout=30)
        if self.unavailable:
            self.refused += 1
            return Failure(503, "Service Unavailable")
        return send(params)

    def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        return self._faulty(super()._api_sendMessage, params)

    def _api_sendDocument(self, params: dict[str, Any]) -> Any:
        return self._faulty(super()._api_sendDocument, params)

    def stop(self) -> None:
        self.gate.set()
        super().stop()


# Quick retries, so that a test sees several attempts in a few seconds.
OUTBOX_ENV = {
    "TAWASUL_OUTBOX_BASE_DELAY_SECONDS": "0.2",
    "TAWASUL_OUTBOX_MAX_DELAY_SECONDS": "1",
    "TAWASUL_OUTBOX_POLL_SECONDS": "0.2",
    "TAWASUL_LOGGING_FORMAT": "json",
}


def twilio_env(fake: FakeTwilio) -> dict[str, str]:
    return {
        "TAWASUL_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TAWASUL_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TAWASUL_TWILIO_WHATSAPP_FROM": WHATSAPP_FROM,
        "TAWASUL_TWILIO_SMS_FROM": SMS_FROM,
        "TAWASUL_TWILIO_PUBLIC_BASE_URL": PUBLIC_URL,
        "TAWASUL_TWILIO_API_BASE_URL": fake.base_url,
        **OUTBOX_ENV,
    }


def telegram_env(fake: FakeBotAPI) -> dict[str, str]:
    return {
        f"TAWASUL_TELEGRAM_{key.upper()}": str(value)
        for key, value in telegram_settings(fake).items()
    } | OUTBOX_ENV


class Server:
    """`tawasul serve` on a fixed port over one database, started and stopped at will."""

    def __init__(self, tmp: Path, env: dict[str, str], name: str = "server") -> None:
        self.tmp = tmp
        self.env = cli_env(tmp, **env)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.log = tmp / f"{name}.log"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (``logging.format = "json"``)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            with suppress(ValueError):
                found.append(json.loads(line))
        return [e for e in found if isinstance(e, dict)]

    async def start(self, startup_seconds: float = 60) -> None:
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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + startup_seconds
        async with httpx.AsyncClient(timeout=1) as http:
            while loop.time() < deadline:
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


async def post_twilio(
    http: httpx.AsyncClient, form: dict[str, str], base: str = ""
) -> httpx.Response:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(PUBLIC_URL + INBOUND_PATH, form),
    }
    return await http.post(base + INBOUND_PATH, content=urlencode(form), headers=headers)


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
def server_env(faulty_twilio: FaultyTwilio) -> dict[str, str]:
    """The channels the server talks to; a test module may give others."""
    return twilio_env(faulty_twilio)


@pytest.fixture
async def server(tmp_path: Path, server_env: dict[str, str]) -> AsyncIterator[Server]:
    await asyncio.to_thread(run_cli, tmp_path, "db", "upgrade")
    srv = Server(tmp_path, server_env)
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


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text as {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# -- senders, as a load balancer in front of one or several instances hands them out ----------


class RoundRobin:
    """The instances' base URLs in turn; a dead one refuses and the caller tries the next."""

    def __init__(self, servers: Sequence[Server]) -> None:
        self.servers = list(servers)
        self._turn = itertools.count()

    def next(self) -> str:
        return self.servers[next(self._turn) % len(self.servers)].base


TEXTS = ["السلام عليكم", "٣", "ما أوقات الدوام؟", "القائمة", "كيف أسجل؟", "شكرا"]


async def beneficiary(targets: RoundRobin, number: str, acked: list[str], count: int) -> None:
    """Writes in order; a message not acknowledged (no 200) is sent again, as Twilio does."""
    async with httpx.AsyncClient(timeout=5) as http:
        for n in range(count):
            form = whatsapp(number, TEXTS[n % len(TEXTS)], "SM" + secrets.token_hex(16))
            while True:
                try:
                    if (await post_twilio(http, form, targets.next())).status_code == 200:
                        acked.append(form["MessageSid"])
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.05)


async def web_visitor(
    targets: RoundRobin, sent: list[tuple[str, bool]], count: int = 12, tries: int = 300
) -> None:
    """Web chat has no resend: a message is either acknowledged or the visitor sees an error.

    The visitor writes every 0.4 s until ``count`` messages were acknowledged (at most
    ``tries`` times), so that it also writes once the instances are back however long they
    took to start. The session is the cookie, so each request may go to another instance.
    """
    async with httpx.AsyncClient(timeout=5) as http:
        started = False
        for _ in range(tries):
            if not started:
                try:
                    answer = await http.post(
                        targets.next() + "/api/webchat/start", json={"lang": "ar"}
                    )
                    started = answer.status_code == 200
                except httpx.HTTPError:
                    pass
            else:
                text = f"سؤال رقم {secrets.token_hex(3)} {len(sent)}"
                try:
                    ok = (
                        await http.post(
                            targets.next() + "/api/webchat/messages", json={"text": text}
                        )
                    ).status_code == 200
                except httpx.HTTPError:
                    ok = False
                sent.append((text, ok))
                if sum(acknowledged for _, acknowledged in sent) >= count:
                    return
            await asyncio.sleep(0.4)


async def recorded(observer: Service, fake: FakeTwilio) -> None:
    """Wait until every message Twilio took has its outcome in our outbox (a busy machine
    may take seconds)."""
    for _ in range(600):
        async with observer.db.session(write=False) as s:
            known = set(await s.scalars(select(OutboxItem.provider_id)))
        if all(m["sid"] in known for m in fake.messages):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("sent messages were not recorded within 30 s")


async def crash(servers: Sequence[Server], fake: FaultyTwilio, observer: Service) -> None:
    """SIGKILL, with Twilio's answers held meanwhile.

    Sends caught in flight never reach Twilio; those finished have had time to be recorded,
    so any repeat found afterwards is our fault, not the crash window's.
    """
    fake.gate.clear()
    await recorded(observer, fake)
    for server in servers:
        await server.kill()
    await asyncio.sleep(0.2)  # the fake sees the dropped connections before it resumes
    fake.gate.set()


async def assert_once_in_order(
    observer: Service,
    fake: FakeTwilio,
    acked: dict[str, list[str]],
    web_sent: Sequence[tuple[str, bool]],
    *,
    settle_seconds: float,
) -> None:
    """Against the database and Twilio's own record: every acknowledged message stored and
    processed once, in the order sent; every reply delivered once, in order."""
    outbox = await settled(observer, settle_seconds)
    async with observer.db.session(write=False) as s:
        inbound = list(
            await s.scalars(select(Message).where(Message.direction == "in").order_by(Message.id))
        )
        identities = {i.id: i for i in await s.scalars(select(Identity))}

    by_sid = defaultdict(list)
    for row in inbound:
        by_sid[row.channel_message_id].append(row)
        assert row.processed_at is not None
    for number, sids in acked.items():
        assert all(len(by_sid[sid]) == 1 for sid in sids), number
        stored = [r.channel_message_id for r in inbound if r.channel_message_id in set(sids)]
        assert stored == sids, f"order of {number}"
    web_rows = [r.text for r in inbound if r.channel == "webchat"]
    assert any(ok for _, ok in web_sent) or not web_sent
    for text, ok in web_sent:
        assert web_rows.count(text) == (1 if ok else web_rows.count(text)) <= 1

    whatsapp_items = [i for i in outbox if i.channel == "whatsapp"]
    assert whatsapp_items and all(i.status == "sent" for i in whatsapp_items)
    for number, sids in acked.items():
        ours = [
            i.provider_id
            for i in whatsapp_items
            if identities[i.identity_id].address == number  # type: ignore[index]
        ]
        theirs = [m["sid"] for m in fake.to(number)]
        assert theirs == ours, (
            f"replies to {number}",
            [(m["sid"], m.get("Body", "")[:30]) for m in fake.to(number)],
            ours,
        )
        assert len(ours) >= len(sids)
