"""Sign-in attempts made at once are counted as one after the other, on both databases."""

from __future__ import annotations

import asyncio

from storage.db import Database
from storage.migrate import upgrade
from storage.staff import ConsoleTx


async def test_parallel_reservations_never_pass_the_limits(database_url: str) -> None:
    db = Database(database_url)
    try:
        await upgrade(db.engine)

        async def attempt(email: str, ip: str) -> int | None:
            async with db.session() as session:
                reserved = await ConsoleTx(session).reserve_login(
                    email, ip, per_account=5, per_address=20
                )
                # The slow part of a real sign-in comes after, outside the transaction;
                # here another attempt gets its turn before this one commits where it can.
                await asyncio.sleep(0)
                return reserved

        one_account = await asyncio.gather(
            *(attempt("agent@example.org", "203.0.113.7") for _ in range(40))
        )
        assert sum(r is not None for r in one_account) == 5
        many_accounts = await asyncio.gather(
            *(attempt(f"staff{i}@example.org", "203.0.113.7") for i in range(40))
        )
        assert sum(r is not None for r in many_accounts) == 20 - 5
        elsewhere = await attempt("agent@example.org", "198.51.100.20")
        assert elsewhere is not None
        async with db.session() as session:
            await ConsoleTx(session).login_succeeded(elsewhere)
        # A success is not a failure: it counts against no limit.
        assert all(
            await asyncio.gather(*(attempt("agent@example.org", "198.51.100.20") for _ in range(5)))
        )
    finally:
        await db.dispose()
