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


# A placeholder with the spaces before it: one without a value goes with them, so that
# "Hello {name}, ..." reads "Hello, ..." and not "Hello , ...".
_FILLED = re.compile(r"[ \t]*\{(" + "|".join(PLACEHOLDERS) + r")\}")
_BRACES = re.compile(r"\{[^{}\n]*\}|[{}]")


def fill(template: str, values: Mapping[str, str]) -> str:
    """Known placeholders are replaced; one without a value for this beneficiary is left
    out with the spaces before it. Any other brace text is left as written (saving refuses
    it: see ``stray_braces``)."""

    def value(match: re.Match[str]) -> str:
        found = values.get(match.group(1), "")
        return match.group(0)[: match.start(1) - 1 - match.start(0)] + found if found else ""

    return _FILLED.sub(value, template).strip()


def stray_braces(template: str) -> list[str]:
    """Braces that are not one of the placeholders: a misspelt {nme}, a lone { or }. They
    would reach the beneficiary as written."""
    return [m.group(0) for m in _BRACES.finditer(template) if not _PATTERN.fullmatch(m.group(0))]


def pick_text(text_ar: str, text_en: str, lang: str) -> str:
    if lang == "en" and text_en.strip():
        return text_en
    return text_ar or text_en
