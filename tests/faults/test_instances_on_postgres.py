"""Three instances on one PostgreSQL, webhooks spread over them, one killed mid-stream.

Every acknowledged message is processed once and in order, every reply reaches Twilio once
and in order, and the mailbox reader, held by one instance at a time, moves to a survivor
when its holder dies.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import httpx
import pytest

from bot.service import Service
from tests.conftest import make_config, run_cli
from tests.email.conftest import email_config, mail_server  # noqa: F401
from tests.email.mailserver import MailServer
from tests.faults.conftest import (
    TEXTS,
    FaultyTwilio,
    RoundRobin,
    Server,
    assert_once_in_order,
    beneficiary,
    crash,
    twilio_env,
    web_visitor,
)
from tests.pg.fixtures import pg_cluster, pg_url  # noqa: F401  (fixtures)

NUMBERS = [f"+9665012400{i:02d}" for i in range(6)]
COUNT = 2 * len(TEXTS)  # messages per beneficiary
INSTANCES = 3


async def holders(servers: Sequence[Server]) -> list[Server] | None:
    """The instances whose /readyz says they read the mailbox now (None: one did not say)."""
    found = []
    async with httpx.AsyncClient(timeout=10) as http:
        for server in servers:
            try:
                state = (await http.get(server.base + "/readyz")).json()
            except httpx.HTTPError:
                return None  # busy; ask again
            link = state["channels"]["email"]
            assert link in ("connected", "failing", "standby"), state
            if link != "standby":  # held here (failing: the mail server refused once)
                found.append(server)
    return found


async def eventually_one_holder(servers: Sequence[Server], within: float) -> Server:
    deadline = time.monotonic() + within
    while True:
        found = await holders(servers)
        if found is not None and len(found) == 1:
            return found[0]
        assert found is None or len(found) < 2, "two instances read the mailbox"
        assert time.monotonic() < deadline, f"nobody read the mailbox within {within} s"
        await asyncio.sleep(0.1)


def took(server: Server, job: str) -> bool:
    return any(e.get("event") == "lock.taken" and e.get("job") == job for e in server.events())


@pytest.fixture
async def instances(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
    faulty_twilio: FaultyTwilio,
    mail_server: MailServer,  # noqa: F811
) -> AsyncIterator[tuple[list[Server], str, Service]]:
    bot = mail_server.new_user("bot")
    env = twilio_env(faulty_twilio) | {
        "TAWASUL_DATABASE_URL": pg_url,
        **{f"TAWASUL_EMAIL_{k.upper()}": str(v) for k, v in email_config(mail_server, bot).items()},
    }
    servers = [Server(tmp_path, env, name=f"instance{n}") for n in range(INSTANCES)]
    await asyncio.to_thread(run_cli, tmp_path, "db", "upgrade", env=servers[0].env)
    observer = Service(make_config(tmp_path, database={"url": pg_url}))
    try:
        yield servers, bot, observer
    finally:
        for server in servers:
            await server.stop()
        await observer.close()


async def test_instances_share_the_work_and_survive_one_killed(
    instances: tuple[list[Server], str, Service],
    faulty_twilio: FaultyTwilio,
    mail_server: MailServer,  # noqa: F811
) -> None:
    servers, bot, observer = instances
    await asyncio.gather(*(s.start() for s in servers))
    holder = await eventually_one_holder(servers, within=10)
    assert [s for s in servers if took(s, f"email:{bot}:INBOX")] == [holder]

    targets = RoundRobin(servers)
    acked: dict[str, list[str]] = defaultdict(list)
    web_sent: list[tuple[str, bool]] = []
    drivers = [
        asyncio.create_task(beneficiary(targets, number, acked[number], COUNT))
        for number in NUMBERS
    ] + [asyncio.create_task(web_visitor(targets, web_sent))]

    await asyncio.sleep(1.5)
    await crash([holder], faulty_twilio, observer)
    survivors = [s for s in servers if s is not holder]

    # The mailbox is read again, by exactly one survivor.
    person = mail_server.new_user("huda")
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = person, bot, "سؤال"
    mail["Message-ID"] = "<after-crash@mail.example.test>"
    mail.set_content("السلام عليكم")
    await asyncio.to_thread(mail_server.deliver, mail.as_bytes(policy=SMTP), bot, person)
    successor = await eventually_one_holder(survivors, within=20)
    assert took(successor, f"email:{bot}:INBOX")

    await asyncio.wait_for(asyncio.gather(*drivers), 40)
    assert all(len(acked[number]) == COUNT for number in NUMBERS)
    await assert_once_in_order(observer, faulty_twilio, acked, web_sent, settle_seconds=30)

    deadline = time.monotonic() + 20
    while not await asyncio.to_thread(mail_server.messages, person):
        assert time.monotonic() < deadline, "the mail sent after the crash was not answered"
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.5)  # time enough for a second answer, were there one
    [answer] = await asyncio.to_thread(mail_server.messages, person)
    assert answer["In-Reply-To"] == "<after-crash@mail.example.test>"
