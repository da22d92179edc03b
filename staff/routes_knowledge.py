"""The knowledge base for administrators: the entries, editing them, and teaching the bot the
questions it could not answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from conversations.faq import FaqEntry, FaqError
from conversations.normalize import normalize_arabic
from staff.console import PREFIX, Console, Missing, route_class
from staff.deps import KbEditor, KnowledgeViewer, RowId
from staff.permissions import Staff

MAX_TEXT = 4000
MAX_QUESTIONS = 20_000


def _folded(text: str) -> str:
    return " ".join(normalize_arabic(text).lower().split())


def matches(entry: FaqEntry, query: str) -> bool:
    """Every word of the search in the entry's id, questions or answers (Arabic folded)."""
    words = _folded(query).split()
    haystack = _folded(
        " ".join(
            [entry.id, *(q for qs in entry.questions.values() for q in qs), *entry.answers.values()]
        )
    )
    return all(word in haystack for word in words)


def _lines(text: str) -> str:
    """A textarea's text with the line ends the file uses: browsers send CR LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _split(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def entry_from_form(
    entry_id: str, questions_ar: str, questions_en: str, answer_ar: str, answer_en: str
) -> FaqEntry:
    return FaqEntry(
        id=entry_id.strip(),
        questions={"ar": tuple(_split(questions_ar)), "en": tuple(_split(questions_en))},
        answers={"ar": _lines(answer_ar), "en": _lines(answer_en)},
    )


def routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=f"{PREFIX}/knowledge", route_class=route_class(console))
    kb = console.backend.knowledge_admin

    def entry_page(
        request: Request,
        staff: Staff,
        entry: FaqEntry | None,
        *,
        original_id: str | None,
        problem: FaqError | None = None,
        status: int = 200,
    ) -> Response:
        return console.render(
            request,
            staff,
            "kb_entry.html",
            status=status,
            entry=entry,
            original_id=original_id or "",
            problem=problem,
            seen=kb.file_version(),
            editable=kb.path is not None,
        )

    @router.get("", include_in_schema=False)
    async def kb_list(request: Request, staff: KnowledgeViewer, q: str = "") -> Response:
        entries: Sequence[FaqEntry] = kb.entries
        found = [e for e in entries if matches(e, q)] if q.strip() else list(entries)
        misses = await kb.misses(limit=1000)
        return console.render(
            request,
            staff,
            "kb_list.html",
            entries=found,
            total=len(entries),
            q=q,
            misses=len(misses),
            kb_path=str(kb.path) if kb.path else "",
            editable=kb.path is not None,
        )

    @router.get("/new", include_in_schema=False)
    async def kb_new(request: Request, staff: KnowledgeViewer) -> Response:
        return entry_page(request, staff, None, original_id=None)

    @router.get("/entries/{entry_id}", include_in_schema=False)
    async def kb_entry(request: Request, staff: KnowledgeViewer, entry_id: str) -> Response:
        entry = next((e for e in kb.entries if e.id == entry_id), None)
        if entry is None:
            raise Missing
        return entry_page(request, staff, entry, original_id=entry.id)

    @router.post("/entries", include_in_schema=False)
    async def kb_save(
        request: Request,
        staff: KbEditor,
        entry_id: Annotated[str, Form(max_length=64)] = "",
        original_id: Annotated[str, Form(max_length=64)] = "",
        seen: Annotated[str, Form(max_length=64)] = "",
        questions_ar: Annotated[str, Form(max_length=MAX_QUESTIONS)] = "",
        questions_en: Annotated[str, Form(max_length=MAX_QUESTIONS)] = "",
        answer_ar: Annotated[str, Form(max_length=MAX_TEXT)] = "",
        answer_en: Annotated[str, Form(max_length=MAX_TEXT)] = "",
    ) -> Response:
        entry = entry_from_form(entry_id, questions_ar, questions_en, answer_ar, answer_en)
        try:
            await kb.save(entry, original_id=original_id or None, actor=staff.actor, seen=seen)
        except FaqError as exc:
            # Refused with the reason; the file and the index in use stay as they were.
            return entry_page(
                request,
                staff,
                entry,
                original_id=original_id or None,
                problem=exc,
                status=400,
            )
        return console.back(f"{PREFIX}/knowledge/entries/{entry.id}", "kb_saved")

    async def misses_page(
        request: Request,
        staff: Staff,
        *,
        q: str = "",
        problem: FaqError | None = None,
        status: int = 200,
        kept: dict[str, object] | None = None,
    ) -> Response:
        return console.render(
            request,
            staff,
            "kb_misses.html",
            status=status,
            misses=await kb.misses(limit=200, search=q),
            entries=sorted(kb.entries, key=lambda e: e.id),
            q=q,
            problem=problem,
            kept=kept or {},
            editable=kb.path is not None,
        )

    @router.get("/misses", include_in_schema=False)
    async def kb_misses(request: Request, staff: KnowledgeViewer, q: str = "") -> Response:
        return await misses_page(request, staff, q=q)

    @router.post("/misses/{miss_id}/teach", include_in_schema=False)
    async def kb_teach(
        request: Request,
        staff: KbEditor,
        miss_id: RowId,
        entry_id: Annotated[str, Form(max_length=64)] = "",
        new_id: Annotated[str, Form(max_length=64)] = "",
        answer_ar: Annotated[str, Form(max_length=MAX_TEXT)] = "",
        answer_en: Annotated[str, Form(max_length=MAX_TEXT)] = "",
        question: Annotated[str, Form(max_length=1000)] = "",
    ) -> Response:
        new_entry = None
        if new_id.strip():
            new_entry = entry_from_form(new_id, "", "", answer_ar, answer_en)
        elif not entry_id.strip():
            return console.back(f"{PREFIX}/knowledge/misses?error=kb_target")
        try:
            await kb.teach(
                miss_id,
                entry_id.strip(),
                actor=staff.actor,
                new_entry=new_entry,
                wording=_lines(question),
            )
        except LookupError:
            raise Missing from None
        except FaqError as exc:
            # Refused: the form as it was typed, under the reason; the address shown is the
            # list's, not this action's (staff.js), so that a reload does not post again.
            kept: dict[str, object] = {
                "miss": miss_id,
                "entry_id": entry_id,
                "new_id": new_id,
                "answer_ar": answer_ar,
                "answer_en": answer_en,
                "question": question,
            }
            return await misses_page(request, staff, problem=exc, status=400, kept=kept)
        target = new_entry.id if new_entry else entry_id.strip()
        return console.back(f"{PREFIX}/knowledge/misses?taught={target}", "kb_taught")

    return router
