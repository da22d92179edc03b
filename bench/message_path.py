"""A later message's whole path in one process, without HTTP: its CPU and its statements.

    python bench/message_path.py [--beneficiaries 300] [--rounds 3]
    python bench/message_path.py --checkout ../other-version      (the same on other code)

Each beneficiary first says hello (not counted); then, for each round, every beneficiary
writes once through WhatsApp, the engine steps every stored message, and the outbox sends
every reply to a stand-in for the channel that answers at once. It prints the CPU time a
message (the process's, all threads, over store, step and send), the part of it the outbox's
passes took (claims, sends, and the outcomes written down), and the SQL statements a
message. The database is a fresh SQLite file in a temporary folder, with the test suite's
settings (its throw-away keys among them): run it from a checkout with its test files.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


async def measure(beneficiaries: int, rounds: int) -> None:
    from sqlalchemy import event

    from bot.logs import setup_logging
    from bot.service import Service
    from conversations.delivery import Sent
    from conversations.messages import Channel, Inbound
    from storage.migrate import upgrade
    from tests.conftest import make_config

    setup_logging("warning")

    class StandIn:
        """Takes every reply at once, as a channel's API would."""

        def __init__(self) -> None:
            self.sent = 0

        async def send(self, delivery: Any) -> Sent:
            self.sent += 1
            return Sent(provider_id=f"SM{self.sent:032d}")

    service = Service(make_config(Path(tempfile.mkdtemp(prefix="tawasul-path-"))))
    await upgrade(service.db.engine)
    service.senders["whatsapp"] = StandIn()
    statements: Counter[str] = Counter()

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements[re.sub(r"\s+", " ", statement)[:80]] += 1

    event.listen(service.db.engine.sync_engine, "before_cursor_execute", seen)
    numbers = [f"+9665{n:08d}" for n in range(beneficiaries)]
    written = 0

    async def everyone_writes(text: str) -> float:
        """Store, step and send one message of every beneficiary; the sends' CPU time."""
        nonlocal written
        for number in numbers:
            written += 1
            message = Inbound(
                channel=Channel.WHATSAPP,
                sender_id=number,
                text=text,
                channel_message_id=f"SMin{written}",
            )
            await service.receive(message)
        await service.process_pending()
        started = time.process_time()
        while await service.deliver_due():
            pass
        return time.process_time() - started

    try:
        await everyone_writes("السلام عليكم")
        statements.clear()
        sending = 0.0
        started = time.process_time()
        for n in range(rounds):
            sending += await everyone_writes("القائمة" if n % 2 else "1")
        cpu = time.process_time() - started
    finally:
        await service.close()
    messages = rounds * beneficiaries
    print(
        f"{ROOT}: CPU {cpu / messages * 1000:.2f} ms a message "
        f"(the outbox's passes {sending / messages * 1000:.2f} ms), "
        f"{sum(statements.values()) / messages:.1f} statements a message"
    )


def main() -> None:
    global ROOT
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beneficiaries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checkout", type=Path, help="measure the code of another checkout")
    args = parser.parse_args()
    if args.checkout is not None:
        ROOT = args.checkout.resolve()
    sys.path.insert(0, str(ROOT))
    asyncio.run(measure(args.beneficiaries, args.rounds))


if __name__ == "__main__":
    main()
