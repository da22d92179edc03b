"""The console's own words, Arabic first with English beside it (staff/i18n/*.toml)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from conversations.catalog import plural_key

LANGS = ("ar", "en")
FOLDER = Path(__file__).parent / "i18n"


def _flatten(prefix: str, node: Mapping[str, object], out: dict[str, str]) -> None:
    for key, value in node.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            _flatten(name, value, out)
        else:
            out[name] = str(value)


@cache
def table(lang: str) -> Mapping[str, str]:
    flat: dict[str, str] = {}
    _flatten("", tomllib.loads((FOLDER / f"{lang}.toml").read_text("utf-8")), flat)
    return flat


@dataclass(frozen=True, slots=True)
class Translator:
    lang: str

    @property
    def dir(self) -> str:
        return "rtl" if self.lang == "ar" else "ltr"

    @property
    def other(self) -> str:
        return "en" if self.lang == "ar" else "ar"

    def __call__(self, key: str, **params: object) -> str:
        text = table(self.lang).get(key) or table("ar").get(key)
        if text is None:
            raise KeyError(f"staff console text {key!r} is missing")
        return text.format(**params) if params else text

    def counted(self, key: str, n: int, **params: object) -> str:
        """The text for ``n`` of something in the number the language wants (``key.one``,
        ``key.two``, ``key.few``, ``key.many`` where the table has them, else ``key``):
        رسالة واحدة، رسالتان، ٥ رسائل، ١١ رسالة."""
        return self(plural_key(key, self.lang, n, table(self.lang)), n=n, **params)

    def has(self, key: str) -> bool:
        return key in table(self.lang)

    def maybe(self, prefix: str, value: str | None) -> str:
        """The label of a value (a status, a channel...), or the value itself."""
        if not value:
            return "—"
        key = f"{prefix}.{value}"
        return self(key) if self.has(key) else value


def translator(lang: str | None) -> Translator:
    return Translator(lang if lang in LANGS else "ar")
