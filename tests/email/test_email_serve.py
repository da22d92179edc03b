"""`tawasul serve` with only the [email] settings in its environment answers the mailbox."""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import httpx

from tests.conftest import TAWASUL, cli_env, free_port, run_cli
from tests.email.conftest import email_config, eventually, text_of
from tests.email.mailserver import MailServer


async def test_serve_answers_the_mailbox(tmp_path: Path, mail_server: MailServer) -> None:
    bot, person = mail_server.new_user("bot"), mail_server.new_user("noura")
    env = cli_env(
        tmp_path,
        **{f"TAWASUL_EMAIL_{k.upper()}": str(v) for k, v in email_config(mail_server, bot).items()},
    )
    run_cli(tmp_path, "db", "upgrade", env=env)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *TAWASUL,
        "serve",
        "--port",
        str(port),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.returncode is None, "serve stopped"
                assert time.monotonic() < deadline, "serve did not start"
                await asyncio.sleep(0.1)

        msg = EmailMessage()
        msg["From"] = f"Noura <{person}>"
        msg["To"] = bot
        msg["Subject"] = "سؤال"
        msg["Message-ID"] = "<serve-1@mail.example.test>"
        msg.set_content("السلام عليكم")
        await asyncio.to_thread(mail_server.deliver, msg.as_bytes(policy=SMTP), bot, person)

        async def answered() -> list[EmailMessage]:
            inbox = await asyncio.to_thread(mail_server.messages, person)
            return inbox if inbox else []

        await eventually(answered, within=30)
        await asyncio.sleep(1.5)  # time enough for a second mail, were there one
        inbox = await answered()
        assert all(m["In-Reply-To"] == "<serve-1@mail.example.test>" for m in inbox)
        assert all(m["Subject"] == "Re: سؤال" for m in inbox)
        assert len(inbox) == 1  # the greeting and the menu in one mail
        assert "١. " in text_of(inbox[-1])  # the menu, numbered
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
