"""Message catalogues: every sentence a beneficiary reads, in Arabic and English.

A key may have an ``.sms`` variant (``greeting.sms``) for channels where every
character costs; ``short`` falls back to the full text when there is none.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Container, Mapping
from dataclasses import dataclass
from importlib import resources

LANGS = ("ar", "en")


class CatalogError(ValueError):
    pass


def _flatten(prefix: str, node: Mapping[str, object], out: dict[str, str]) -> None:
    for key, value in node.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            _flatten(name, value, out)
        elif isinstance(value, str):
            out[name] = value
        else:
            raise CatalogError(f"{name}: expected text, got {type(value).__name__}")


@dataclass(frozen=True)
class Catalog:
    entries: Mapping[str, Mapping[str, str]]

    def text(self, lang: str, key: str, **params: object) -> str:
        table = self.entries.get(lang) or self.entries["ar"]
        template = table.get(key)
        if template is None:
            template = self.entries["ar"].get(key)
        if template is None:
            raise KeyError(f"message catalogue has no key {key!r}")
        return template.format(**params) if params else template

    def counted(self, lang: str, key: str, n: int, **params: object) -> str:
        """The text for ``n`` of something, in the grammatical number the language wants
        (``key.one``, ``key.two``, ``key.few``, ``key.many`` when the catalogue has them,
        else ``key``): Arabic says ملف واحد، ملفان، ٣ ملفات، ١١ ملفًا."""
        table = self.entries.get(lang) or self.entries["ar"]
        return self.text(lang, plural_key(key, lang, n, table), n=n, **params)

    def minutes(self, lang: str, n: int) -> str:
        """A number of minutes as the language says it: دقيقة واحدة، دقيقتين، ١٠ دقائق، ١٥
        دقيقة; 1 minute, 15 minutes."""
        return self.counted(lang, "duration.minutes", n)

    def short(self, lang: str, key: str, **params: object) -> str | None:
        table = self.entries.get(lang) or self.entries["ar"]
        if f"{key}.sms" not in table:
            return None
        return self.text(lang, f"{key}.sms", **params)

    def keys(self, lang: str) -> set[str]:
        return set(self.entries[lang])

    def placeholders(self, lang: str, key: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.entries[lang][key]) if name}


def plural_category(lang: str, n: int) -> str:
    """CLDR's plural category of a whole number: Arabic has six, English two."""
    if lang == "ar":
        if n == 0:
            return "zero"
        if n in (1, 2):
            return "one" if n == 1 else "two"
        if 3 <= n % 100 <= 10:
            return "few"
        return "many" if 11 <= n % 100 <= 99 else "other"
    return "one" if n == 1 else "other"


def plural_key(key: str, lang: str, n: int, table: Container[str]) -> str:
    """The key of the text for ``n`` of something: ``key.one``, ``key.two``, ``key.few``,
    ``key.many``... where ``table`` has it, else ``key``."""
    form = f"{key}.{plural_category(lang, n)}"
    return form if form in table else key


def parse_catalog(sources: Mapping[str, str]) -> Catalog:
    entries: dict[str, dict[str, str]] = {}
    for lang, text in sources.items():
        flat: dict[str, str] = {}
        _flatten("", tomllib.loads(text), flat)
        entries[lang] = flat
    if "ar" not in entries:
        raise CatalogError("an Arabic catalogue is required")
    return Catalog(entries)


def default_catalog() -> Catalog:
    base = resources.files("conversations") / "data" / "catalog"
    return parse_catalog({lang: (base / f"{lang}.toml").read_text("utf-8") for lang in LANGS})
