"""The knowledge base and forms in use: the shipped ones or the association's own files."""

from __future__ import annotations

from pathlib import Path

from bot.config import KnowledgeConfig
from conversations.faq import FaqEntry, FaqMatch, OverlapMatcher, default_faq_text, parse_faq
from conversations.forms import Form, load_forms


def read_faq(path: Path | None) -> tuple[FaqEntry, ...]:
    if path is None:
        return parse_faq(default_faq_text(), "default knowledge base")
    return parse_faq(path.read_text("utf-8"), str(path))


class Knowledge:
    """Answers from the current knowledge base; ``reload`` swaps it only when the file is good."""

    def __init__(self, config: KnowledgeConfig) -> None:
        self.config = config
        self.forms: dict[str, Form] = load_forms(config.forms_dir)
        self.entries = read_faq(config.faq_path)
        self._matcher = OverlapMatcher(self.entries)

    def reload(self) -> int:
        entries = read_faq(self.config.faq_path)
        self.entries = entries
        self._matcher = OverlapMatcher(entries)
        return len(entries)

    def match(self, text: str, lang: str) -> FaqMatch | None:
        return self._matcher.match(text, lang)
