"""The terminal channel: a conversation on stdin/stdout, scriptable through a pipe.

Interactive: a prompt and readable replies. Piped: one message a line, replies after
each. With ``json_lines`` each input line gives exactly one JSON line on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO

from conversations.messages import Attachment, Channel, Inbound, Reply, numbered_label

Handler = Callable[[Inbound], Awaitable[Sequence[Reply]]]
FileSaver = Callable[[Path], Awaitable[Attachment]]
# Replies written to this conversation meanwhile (a staff member's), shown before the bot's.
Waiting = Callable[[], Awaitable[Sequence[Reply]]]

SLASH_COMMANDS = {
    "/start": "start",
    "/menu": "menu",
    "/cancel": "cancel",
    "/help": "help",
    "/en": "lang:en",
    "/ar": "lang:ar",
}


def render_text(reply: Reply) -> str:
    """A reply as terminal text: choices as numbered lines."""
    lines = [reply.text]
    for number, choice in enumerate(reply.choices, start=1):
        lines.append(f"  {number}. {numbered_label(number, choice.label)}")
    if reply.ask is not None and reply.ask.value == "attachment":
        lines.append("  (/attach PATH)")
    return "\n".join(lines)


def render_json(replies: Sequence[Reply], error: str | None = None) -> str:
    data: dict[str, object] = {"replies": [r.to_dict() for r in replies]}
    if error:
        data["error"] = error
    return json.dumps(data, ensure_ascii=False)


def parse_line(line: str, user: str, message_number: int) -> tuple[Inbound | None, Path | None]:
    """A typed line as an inbound message, or the path of a file to attach."""
    text = line.rstrip("\r\n")
    stripped = text.strip()
    if stripped.startswith("/attach "):
        return None, Path(stripped.removeprefix("/attach ").strip()).expanduser()
    command = SLASH_COMMANDS.get(stripped.lower())
    return (
        Inbound(
            channel=Channel.CONSOLE,
            sender_id=user,
            text="" if command else text,
            command=command,
        ),
        None,
    )


async def run_console(
    handler: Handler,
    save_file: FileSaver,
    *,
    user: str,
    json_lines: bool = False,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    waiting: Waiting | None = None,
) -> None:
    """``waiting``: what others wrote to this conversation since it was last shown, asked for
    at the start (interactive) and before each message's replies."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    interactive = stdin.isatty() and not json_lines
    loop = asyncio.get_running_loop()

    def emit(replies: Sequence[Reply], error: str | None = None) -> None:
        if json_lines:
            stdout.write(render_json(replies, error) + "\n")
        else:
            if error:
                stdout.write(f"! {error}\n")
            for reply in replies:
                stdout.write(render_text(reply) + "\n\n")
        stdout.flush()

    async def answered(msg: Inbound) -> list[Reply]:
        earlier = list(await waiting()) if waiting is not None else []
        try:
            return earlier + list(await handler(msg))
        except Exception:
            if earlier:  # counted as delivered already: shown whatever happens to the rest
                emit(earlier)
            raise

    if interactive:
        emit(await answered(Inbound(Channel.CONSOLE, user, command="start")))
    count = 0
    while True:
        if interactive:
            stdout.write("› ")
            stdout.flush()
        line = await loop.run_in_executor(None, stdin.readline)
        if line == "":
            break
        count += 1
        msg, attach = parse_line(line, user, count)
        if attach is not None:
            try:
                attachment = await save_file(attach)
            except (OSError, ValueError) as exc:
                emit([], f"cannot attach {attach.name}: {exc}")
                continue
            msg = Inbound(Channel.CONSOLE, user, attachments=(attachment,))
        assert msg is not None
        if not msg.text.strip() and not msg.command and not msg.attachments:
            if json_lines:
                emit([])
            continue
        emit(await answered(msg))
