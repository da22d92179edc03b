"""`tawasul retention run`: its period checked like the setting's, and asked before removing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.service import Service
from tests.conftest import run_cli
from tests.privacy.test_retention import contents, old_closed_request


def test_the_period_is_at_least_a_month(tmp_path: Path) -> None:
    for months in ("0", "-5"):
        result = run_cli(
            tmp_path, "retention", "run", "--dry-run", f"--months={months}", check=False
        )
        assert result.returncode == 2 and "1<=x<=1200" in result.stderr


async def test_the_run_says_what_it_will_remove_and_asks_first(
    service: Service, tmp_path: Path
) -> None:
    await old_closed_request(service)
    before = await contents(service)
    far = await asyncio.to_thread(
        run_cli, tmp_path, "retention", "run", "--dry-run", "--months", "1200"
    )
    # A cutoff a century back is a day, not a time in the local mean time of before 1947.
    assert "older than 19" in far.stdout and "+03:06" not in far.stdout
    refused = await asyncio.to_thread(
        run_cli, tmp_path, "retention", "run", input="n\n", check=False
    )
    assert refused.returncode == 1 and "nothing was removed" in refused.stderr
    assert "This will remove the content of" in refused.stderr
    assert await contents(service) == before
    done = await asyncio.to_thread(run_cli, tmp_path, "retention", "run", "--yes")
    assert done.stdout.startswith("Removed the content of")
    assert (await contents(service))[1] < before[1]
