"""The knowledge base and the matcher that answers from it, or admits it cannot."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from conversations.faq_index import Decision


class FaqError(ValueError):
    """A knowledge-base file that cannot be used; the message says where and why, and
    ``code`` names the reason for a page to put it in its reader's language."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


# What an entry may do instead of answering with its text (key ``action``), when the question
# asks for something the bot does rather than for information: "I want to talk to someone"
# hands the conversation to staff, "where is my request" starts the status check.
ACTIONS = frozenset({"staff", "status"})
# What an answer may offer as a button beside it (key ``offer``): "how do I apply?" is
# answered, with the button that starts the request.
OFFERS = frozenset({"apply", "status", "update", "volunteer", "complaint"})


@dataclass(frozen=True, slots=True)
class FaqEntry:
    id: str
    questions: Mapping[str, tuple[str, ...]]
    answers: Mapping[str, str]
    action: str | None = None
    offer: str | None = None

    def answer(self, lang: str) -> str:
        return self.answers.get(lang) or self.answers["ar"]


class FaqMatcher(Protocol):
    def decide(self, text: str, lang: str | None = None) -> Decision: ...

    def entry(self, entry_id: str) -> FaqEntry | None: ...


def parse_knowledge(text: str, source: str) -> tuple[tuple[FaqEntry, ...], tuple[str, ...] | None]:
    """A knowledge-base file's entries and its out-of-scope questions (see the two below),
    read in one pass."""
    data = _loads(text, source)
    return _entries(data, text, source), _out_of_scope(data, source)


def parse_faq(text: str, source: str) -> tuple[FaqEntry, ...]:
    return _entries(_loads(text, source), text, source)


def parse_out_of_scope(text: str, source: str) -> tuple[str, ...] | None:
    """The optional ``[[out_of_scope]]`` tables: questions the association does not answer
    here (government programmes, loans, jobs...). When one of them is closer to a question
    than any entry's, the bot does not answer from the knowledge base. None when the file
    has no such table."""
    return _out_of_scope(_loads(text, source), source)


def _loads(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FaqError(f"{source}: {exc}") from None


def _entries(data: Mapping[str, Any], text: str, source: str) -> tuple[FaqEntry, ...]:
    raw = data.get("faq")
    if not isinstance(raw, list):
        raise FaqError(f"{source}: expected [[faq]] entries")
    entries: list[FaqEntry] = []
    seen: set[str] = set()
    lines = _entry_lines(text)
    for index, item in enumerate(raw, start=1):
        line = lines[index - 1] if index <= len(lines) else 0
        where = f"{source}, line {line}: entry {index}"
        entry_id = item.get("id")
        if not isinstance(entry_id, str) or not entry_id:
            raise FaqError(f"{where}: id is required")
        if entry_id in seen:
            raise FaqError(f"{where}: duplicate id {entry_id!r}", "duplicate")
        seen.add(entry_id)
        questions = item.get("questions", {})
        answers = item.get("answer", {})
        if not isinstance(answers, Mapping) or not isinstance(answers.get("ar"), str):
            raise FaqError(f"{where} ({entry_id}): answer.ar is required", "answer_ar")
        if not isinstance(questions, Mapping) or not questions:
            raise FaqError(
                f"{where} ({entry_id}): questions.ar or questions.en is required", "question"
            )
        for lang, qs in questions.items():
            if not isinstance(qs, list) or not all(isinstance(q, str) and q.strip() for q in qs):
                raise FaqError(f"{where} ({entry_id}): questions.{lang} must be a list of texts")
        if not any(questions.values()):
            raise FaqError(f"{where} ({entry_id}): at least one question is required", "question")
        action = item.get("action")
        if action is not None and action not in ACTIONS:
            raise FaqError(
                f"{where} ({entry_id}): action must be one of {', '.join(sorted(ACTIONS))}"
            )
        offer = item.get("offer")
        if offer is not None and offer not in OFFERS:
            raise FaqError(
                f"{where} ({entry_id}): offer must be one of {', '.join(sorted(OFFERS))}"
            )
        entries.append(
            FaqEntry(
                id=entry_id,
                questions={lang: tuple(str(q) for q in qs) for lang, qs in questions.items()},
                answers={lang: str(a) for lang, a in answers.items()},
                action=action,
                offer=offer,
            )
        )
    return tuple(entries)


def _out_of_scope(data: Mapping[str, Any], source: str) -> tuple[str, ...] | None:
    if "out_of_scope" not in data:
        return None
    raw = data["out_of_scope"]
    if not isinstance(raw, list):
        raise FaqError(f"{source}: expected [[out_of_scope]] tables")
    found: list[str] = []
    for index, item in enumerate(raw, start=1):
        questions = item.get("questions", {}) if isinstance(item, Mapping) else None
        if not isinstance(questions, Mapping):
            raise FaqError(f"{source}: out_of_scope {index}: questions.ar or questions.en")
        for lang, qs in questions.items():
            if not isinstance(qs, list) or not all(isinstance(q, str) and q.strip() for q in qs):
                raise FaqError(
                    f"{source}: out_of_scope {index}: questions.{lang} must be a list of texts"
                )
            found.extend(str(q) for q in qs)
    return tuple(found)


def _entry_lines(text: str) -> list[int]:
    """The line of each ``[[faq]]`` header, so errors point at the entry."""
    return [n for n, line in enumerate(text.splitlines(), start=1) if line.strip() == "[[faq]]"]


def default_faq_text() -> str:
    return (resources.files("conversations") / "data" / "faq.toml").read_text("utf-8")
