"""A job's advisory lock freed by the server (the holder's backend ended: an idle-session
timeout, a proxy or a fail-over closing it, an administrator) is free at once for another
instance, while the holder learns of it only at its next check: the new holder waits until
the old one has noticed, so that one mailbox is never read by two instances at once."""

from __future__ import annotations

import time

from sqlalchemy import text

from storage.db import Database
from storage.locks import singleton


async def test_a_lock_freed_by_the_server_is_used_only_once_its_old_holder_stopped(
    pg_url: str,
) -> None:
    first, second, admin = Database(pg_url), Database(pg_url), Database(pg_url)
    try:
        async with singleton(first, "email:bot@example.org:INBOX", check_every=0.3) as held:
            assert held is not None and held.backend_pid is not None
            async with admin.engine.connect() as c:
                await c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": held.backend_pid})
            started = time.monotonic()
            async with singleton(second, "email:bot@example.org:INBOX", check_every=0.3) as new:
                assert new is not None  # the other instance holds the job now...
                assert held.lost.is_set()  # ...and the old holder knew before it started
            assert time.monotonic() - started < 5
    finally:
        for db in (first, second, admin):
            await db.dispose()
