"""What assistive technology and weak eyesight need from the console's pages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.service import Service
from tests.staff.conftest import queued

CSS = Path(__file__).parents[2] / "staff" / "static" / "staff.css"


def luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_rating_stars_stand_out_from_white() -> None:
    """WCAG 1.4.11: a mark that carries meaning has at least 3:1 against its background."""
    css = CSS.read_text("utf-8")
    rule = re.search(r"\.stars \{ color: var\(--([a-z-]+)\)", css)
    assert rule, "the stars' colour"
    colour = re.search(rf"--{rule.group(1)}: (#[0-9a-f]{{6}})", css)
    assert colour
    assert (1.05) / (luminance(colour.group(1)) + 0.05) >= 3


async def test_the_conversation_history_is_announced_as_it_grows(
    console_service: Service, browser_for: Any
) -> None:
    conversation_id = await queued(console_service)
    agent = await browser_for("agent")
    page = (await agent.get(f"/staff/conversations/{conversation_id}")).text
    history = re.search(r'<div id="history"[^>]*>', page)
    assert history and 'aria-live="polite"' in history.group(0)
