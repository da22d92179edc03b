"""The knowledge base and the matcher that answers from it, or admits it cannot."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

from conversations.normalize import tokens

# Words that carry no meaning for matching: greetings, politeness, question words.
FILLER = frozenset(
    [
        "السلام",
        "عليكم",
        "ورحمه",
        "الله",
        "وبركاته",
        "مرحبا",
        "اهلا",
        "هلا",
        "صباح",
        "مساء",
        "الخير",
        "النور",
        "لو",
        "سمحت",
        "سمحتي",
        "ممكن",
        "من",
        "فضلك",
        "ابغى",
        "ابغي",
        "ابي",
        "اريد",
        "ودي",
        "اعرف",
        "ابي",
        "اعرف",
        "يا",
        "اخي",
        "اخوي",
        "عندي",
        "سوال",
        "سؤال",
        "استفسار",
        "شكرا",
        "جزاك",
        "جزاكم",
        "الله",
        "خير",
        "هل",
        "ما",
        "ماهي",
        "ماهو",
        "هي",
        "هو",
        "وش",
        "ايش",
        "شنو",
        "في",
        "على",
        "عن",
        "الى",
        "من",
        "و",
        "او",
        "ان",
        "انا",
        "لي",
        "كيف",
        "متى",
        "وين",
        "اين",
        "لماذا",
        "ليش",
        "كم",
        "hi",
        "hello",
        "hey",
        "salam",
        "please",
        "pls",
        "i",
        "a",
        "an",
        "the",
        "is",
        "are",
        "do",
        "does",
        "can",
        "could",
        "would",
        "to",
        "of",
        "for",
        "in",
        "on",
        "my",
        "me",
        "what",
        "how",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
        "about",
        "want",
        "know",
        "tell",
        "need",
    ]
)


class FaqError(ValueError):
    """A knowledge-base file that cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class FaqEntry:
    id: str
    questions: Mapping[str, tuple[str, ...]]
    answers: Mapping[str, str]

    def answer(self, lang: str) -> str:
        return self.answers.get(lang) or self.answers["ar"]


@dataclass(frozen=True, slots=True)
class FaqMatch:
    entry: FaqEntry
    score: float


class FaqMatcher(Protocol):
    def match(self, text: str, lang: str) -> FaqMatch | None: ...


def parse_faq(text: str, source: str) -> tuple[FaqEntry, ...]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FaqError(f"{source}: {exc}") from None
    raw = data.get("faq")
    if not isinstance(raw, list):
        raise FaqError(f"{source}: expected [[faq]] entries")
    entries: list[FaqEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(raw, start=1):
        where = f"{source}: entry {index}"
        entry_id = item.get("id")
        if not isinstance(entry_id, str) or not entry_id:
            raise FaqError(f"{where}: id is required")
        if entry_id in seen:
            raise FaqError(f"{where}: duplicate id {entry_id!r}")
        seen.add(entry_id)
        questions = item.get("questions", {})
        answers = item.get("answer", {})
        if not isinstance(answers, Mapping) or not isinstance(answers.get("ar"), str):
            raise FaqError(f"{where} ({entry_id}): answer.ar is required")
        if not isinstance(questions, Mapping) or not questions:
            raise FaqError(f"{where} ({entry_id}): questions.ar or questions.en is required")
        entries.append(
            FaqEntry(
                id=entry_id,
                questions={lang: tuple(str(q) for q in qs) for lang, qs in questions.items()},
                answers={lang: str(a) for lang, a in answers.items()},
            )
        )
    return tuple(entries)


def default_faq_text() -> str:
    return (resources.files("conversations") / "data" / "faq.toml").read_text("utf-8")


def content_words(text: str) -> set[str]:
    return {t for t in tokens(text) if t not in FILLER and len(t) > 1}


class OverlapMatcher:
    """Scores each stored question by the share of its content words the text contains."""

    def __init__(self, entries: Sequence[FaqEntry], threshold: float = 0.5) -> None:
        self.entries = tuple(entries)
        self.threshold = threshold
        self._index = [
            (entry, content_words(q))
            for entry in self.entries
            for qs in entry.questions.values()
            for q in qs
        ]

    def match(self, text: str, lang: str) -> FaqMatch | None:
        words = content_words(text)
        if not words:
            return None
        best: FaqMatch | None = None
        for entry, qwords in self._index:
            if not qwords:
                continue
            common = len(words & qwords)
            score = common / max(len(qwords), len(words))
            if best is None or score > best.score:
                best = FaqMatch(entry, score)
        if best is None or best.score < self.threshold:
            return None
        return best
