"""How many beneficiary messages a single instance handles on embedded SQLite.

Each message goes the whole way: stored once, the conversation locked and loaded, the
engine's step, the state saved and the replies written to the outbox, in one transaction.
Run with `make bench`; prints its figures.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bot.config import load_config
from bot.service import Service
from conversations.messages import Channel, Inbound
from storage.migrate import upgrade

SCRIPT = ["السلام عليكم", "ما هي المستندات المطلوبة؟", "٢", "١", "محمد عبدالله", "القائمة", "٣"]


async def run(conversations: int, concurrency: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tawasul-bench-"))
    config = load_config(
        None,
        {
            "TAWASUL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'bench.db'}",
            "TAWASUL_STORAGE_ATTACHMENTS_DIR": str(tmp / "att"),
            "TAWASUL_LOGGING_LEVEL": "warning",
        },
    )
    from bot.logs import setup_logging

    setup_logging("warning")
    service = Service(config)
    await upgrade(service.db.engine)
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def converse(n: int) -> None:
        for i, text in enumerate(SCRIPT):
            async with semaphore:
                started = time.perf_counter()
                await service.handle(
                    Inbound(Channel.WEBCHAT, f"bench-{n}", text, channel_message_id=f"{n}-{i}")
                )
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(converse(n) for n in range(conversations)))
    elapsed = time.perf_counter() - started
    await service.close()
    total = len(latencies)
    latencies.sort()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"messages            {total}  ({conversations} conversations x {len(SCRIPT)})")
    print(f"concurrency         {concurrency}")
    print(f"throughput          {total / elapsed:.0f} messages/s")
    print(f"latency p50         {statistics.median(latencies) * 1000:.1f} ms")
    print(f"latency p99         {latencies[int(total * 0.99) - 1] * 1000:.1f} ms")
    print(f"peak RSS            {rss_mb:.0f} MB")


if __name__ == "__main__":
    asyncio.run(
        run(
            conversations=int(sys.argv[1]) if len(sys.argv) > 1 else 300,
            concurrency=int(sys.argv[2]) if len(sys.argv) > 2 else 16,
        )
    )
