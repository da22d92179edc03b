"""Canned answers (P15): placeholders filled from the conversation at hand."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

PLACEHOLDERS = ("name", "reference", "staff", "org")
_PATTERN = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


@dataclass(frozen=True, slots=True)
class Filled:
    id: int
    title: str
    text: str


def fill(template: str, values: Mapping[str, str]) -> str:
    """Known placeholders are replaced (empty when unknown for this beneficiary); any
    other brace text is left as written."""
    return _PATTERN.sub(lambda m: values.get(m.group(1), ""), template).strip()


def pick_text(text_ar: str, text_en: str, lang: str) -> str:
    if lang == "en" and text_en.strip():
        return text_en
    return text_ar or text_en
