"""A worker whose work keeps failing (the database down) waits longer between tries whatever
wakes it, and says so in a line each time after the first traceback; it carries on when the
work succeeds again."""

from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from bot import service as service_module


async def test_a_failing_worker_backs_off_however_often_it_is_woken() -> None:
    calls = 0
    healthy = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        if not healthy.is_set():
            raise OperationalError("SELECT 1", {}, sqlite3.OperationalError("unable to open"))
        return 0

    wakeup, stop = asyncio.Event(), asyncio.Event()

    async def webhooks() -> None:  # every stored message wakes the worker
        while not stop.is_set():
            wakeup.set()
            await asyncio.sleep(0.001)

    with capture_logs() as logs:
        tasks = [
            asyncio.create_task(service_module._repeat("inbox", work, wakeup, stop, 5.0)),
            asyncio.create_task(webhooks()),
        ]
        await asyncio.sleep(1.2)
        failed = calls
        healthy.set()
        await asyncio.sleep(3)  # the pause under way (2 s at most), then it works again
        stop.set()
        await asyncio.gather(*tasks)

    assert 2 <= failed <= 4  # 0.5 and 1 s apart at most (it spun hundreds of times before)
    assert calls > failed  # tried again after the database came back
    errors = [e for e in logs if e["event"] == "inbox.error"]
    assert errors[0]["log_level"] == "error" and errors[0].get("exc_info")
    assert all(e["log_level"] == "warning" for e in errors[1:])
    assert any(e["event"] == "inbox.recovered" for e in logs)
