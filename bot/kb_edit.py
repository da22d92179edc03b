"""Changes to the association's knowledge-base file, for `tawasul faq teach` and the console.

Every change is made on the text (keeping the file's layout and comments), checked with the
same parser the server loads it with, and only then written, atomically: a change that would
break the file is refused with the reason and the old file stays in place. A running server
picks the new file up (``watch_knowledge``); the console also reloads its own index at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import tomlkit
from sqlalchemy import select

from bot.knowledge import Knowledge, ensure_faq_file
from conversations.faq import (
    FaqEntry,
    FaqError,
    default_faq_text,
    parse_knowledge,
)
from conversations.references import NUMBER_MASK
from storage.db import Database
from storage.models import UnansweredQuestion, utcnow
from storage.repository import Tx

LANGS = ("ar", "en")
ENTRY_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Miss:
    """A question the bot could not answer."""

    id: int
    text: str
    lang: str
    at: datetime


def version(text: str) -> str:
    """A short fingerprint of the file, so an edit made on an older copy is refused."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def write_checked(path: Path, text: str) -> tuple[FaqEntry, ...]:
    """Write ``text`` over the file only when it parses as a knowledge base (FaqError
    otherwise, the file untouched); the new file replaces the old in one step."""
    entries, _ = parse_knowledge(text, str(path))  # both parts checked
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(partial, mode)  # the same rights as the file it replaces
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return entries


def _entry_table(document: Any, entry_id: str) -> Any:
    for entry in document.get("faq", []):
        if entry.get("id") == entry_id:
            return entry
    raise FaqError(f"no entry {entry_id!r}", "unknown")


def add_question(path: Path, entry_id: str, text: str, lang: str) -> None:
    """Append a question to an entry, keeping the file's layout and comments."""
    document = tomlkit.parse(path.read_text("utf-8"))
    entry = _entry_table(document, entry_id)
    questions = entry.setdefault("questions", tomlkit.table())
    existing = questions.get(lang)
    if existing is None:
        questions[lang] = [text]
    elif text not in existing:
        existing.append(text)
    write_checked(path, tomlkit.dumps(document))


def _lines(values: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        value = " ".join(value.split())
        if value and value not in seen:
            seen.append(value)
    return seen


def _array(values: Sequence[str]) -> Any:
    array = tomlkit.array()
    array.extend(values)
    array.multiline(True)
    return array


def _quoted(value: str) -> str:
    return tomlkit.string(value).as_string()


def _entry_text(entry: FaqEntry) -> str:
    """A new ``[[faq]]`` entry in the layout of the shipped file."""
    lines = ["", "[[faq]]", f"id = {_quoted(entry.id)}"]
    for lang in LANGS:
        questions = entry.questions.get(lang, ())
        if questions:
            lines.append(f"questions.{lang} = [")
            lines += [f"    {_quoted(q)}," for q in questions]
            lines.append("]")
    for lang in LANGS:
        if entry.answers.get(lang):
            lines.append(f"answer.{lang} = {_quoted(entry.answers[lang])}")
    return "\n".join(lines) + "\n"


def clean_entry(
    entry_id: str, questions: Mapping[str, Sequence[str]], answers: Mapping[str, str]
) -> FaqEntry:
    """The entry as it will be written: trimmed, without empty or repeated questions."""
    entry_id = entry_id.strip()
    if not ENTRY_ID.match(entry_id):
        raise FaqError(
            f"id {entry_id!r}: use lower-case Latin letters, digits, '-' or '_' (up to 64)", "id"
        )
    return FaqEntry(
        id=entry_id,
        questions={lang: tuple(_lines(questions.get(lang, ()))) for lang in LANGS},
        answers={lang: answers[lang].strip() for lang in LANGS if answers.get(lang, "").strip()},
    )


def save_entry(path: Path, entry: FaqEntry, *, original_id: str | None, seen: str = "") -> None:
    """Write one entry: a new one at the end (``original_id`` None), or over an existing one
    (its id may change). ``seen`` is the version the editor started from, when known."""
    text = path.read_text("utf-8")
    if seen and seen != version(text):
        raise FaqError("the knowledge base changed since the page was opened; reload it", "changed")
    document = tomlkit.parse(text)
    if original_id is None:
        if any(e.get("id") == entry.id for e in document.get("faq", [])):
            raise FaqError(f"duplicate id {entry.id!r}", "duplicate")
        new_text = tomlkit.dumps(document).rstrip("\n") + "\n" + _entry_text(entry)
    else:
        table = _entry_table(document, original_id)
        table["id"] = entry.id
        questions = table.setdefault("questions", tomlkit.table())
        answers = table.setdefault("answer", tomlkit.table())
        for lang in LANGS:
            if entry.questions.get(lang):
                questions[lang] = _array(entry.questions[lang])
            elif lang in questions:
                del questions[lang]
            if entry.answers.get(lang):
                answers[lang] = entry.answers[lang]
            elif lang in answers:
                del answers[lang]
        new_text = tomlkit.dumps(document)
    write_checked(path, new_text)


# -- unanswered questions -----------------------------------------------------------------------


async def misses(db: Database, limit: int = 50, search: str = "") -> list[Miss]:
    """Questions the bot could not answer, newest first."""
    words = search.split()[:5]
    stmt = (
        select(UnansweredQuestion)
        .where(UnansweredQuestion.taught_at.is_(None))
        .order_by(UnansweredQuestion.id.desc())
    )
    found: list[Miss] = []
    async with db.session(write=False) as session:
        # The texts are encrypted at rest: a search reads them and matches here.
        rows = await session.stream_scalars(stmt if words else stmt.limit(limit))
        async for row in rows:
            if not words or any(w in row.text for w in words):
                found.append(Miss(row.id, row.text, row.lang, row.created_at))
                if len(found) >= limit:
                    break
    return found


async def teach(
    db: Database,
    path: Path,
    miss_id: int,
    entry_id: str,
    *,
    actor: str,
    new_entry: FaqEntry | None = None,
    wording: str = "",
) -> str:
    """Make an unanswered question a way of asking ``entry_id`` (or the first question of
    ``new_entry``, written in the same step); the question leaves the list, and stays in its
    month's report. ``wording`` replaces the question's text when staff edited it (to take a
    personal detail out, say). Returns the text taught."""
    ensure_faq_file(path)
    async with db.session() as session:
        miss = await session.get(UnansweredQuestion, miss_id)
        if miss is None or miss.taught_at is not None:
            raise LookupError(f"no unanswered question #{miss_id}")
        # One line, as every stored way of asking is (a console box sends its line breaks).
        text = " ".join((wording or miss.text).split())
        lang = miss.lang if miss.lang in LANGS else "ar"
        if NUMBER_MASK in text:
            raise FaqError(
                f"the question still holds a hidden number ({NUMBER_MASK}): write it as "
                "beneficiaries would ask it, without the number, before teaching it",
                "hidden_number",
            )
        if new_entry is not None:
            questions = {k: list(v) for k, v in new_entry.questions.items()}
            questions[lang] = [text, *questions.get(lang, [])]
            new_entry = clean_entry(new_entry.id, questions, new_entry.answers)
            await asyncio.to_thread(save_entry, path, new_entry, original_id=None)
            entry_id = new_entry.id
        else:
            await asyncio.to_thread(add_question, path, entry_id, text, lang)
        await Tx(session).audit(actor, "faq.taught", entry_id, miss=miss_id)
        # Kept (marked) rather than deleted: the month's report still counts it.
        miss.taught_at, miss.taught_to = utcnow(), entry_id
        return text


class KnowledgeEditor:
    """The knowledge base as the console edits it (``staff.backend.KnowledgeAdmin``)."""

    def __init__(self, knowledge: Knowledge, db: Database) -> None:
        self.knowledge = knowledge
        self.db = db
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path | None:
        return self.knowledge.config.faq_path

    def _path(self) -> Path:
        if self.path is None:
            raise FaqError("knowledge.faq_path is not set: the knowledge base cannot be edited")
        return self.path

    @property
    def entries(self) -> Sequence[FaqEntry]:
        return self.knowledge.entries

    def file_version(self) -> str:
        path = self.path
        if path is None:
            return ""
        # Before the first change the file is the shipped one, created on the first save.
        return version(path.read_text("utf-8") if path.exists() else default_faq_text())

    async def _reload(self) -> None:
        await asyncio.to_thread(self.knowledge.reload)

    async def save(
        self, entry: FaqEntry, *, original_id: str | None, actor: str, seen: str = ""
    ) -> None:
        path = self._path()
        entry = clean_entry(entry.id, entry.questions, entry.answers)
        async with self._lock:
            await asyncio.to_thread(ensure_faq_file, path)
            await asyncio.to_thread(save_entry, path, entry, original_id=original_id, seen=seen)
            async with self.db.session() as session:
                await Tx(session).audit(
                    actor,
                    "faq.added" if original_id is None else "faq.saved",
                    entry.id,
                    **({"was": original_id} if original_id not in (None, entry.id) else {}),
                )
            await self._reload()

    async def misses(self, limit: int = 100, search: str = "") -> list[Miss]:
        return await misses(self.db, limit, search)

    async def teach(
        self,
        miss_id: int,
        entry_id: str,
        *,
        actor: str,
        new_entry: FaqEntry | None = None,
        wording: str = "",
    ) -> str:
        async with self._lock:
            text = await teach(
                self.db,
                self._path(),
                miss_id,
                entry_id,
                actor=actor,
                new_entry=new_entry,
                wording=wording,
            )
            await self._reload()
        return text
