"""The queue, a conversation's page, and what staff do in it (P4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response, StreamingResponse

from conversations.references import mask_long_numbers
from staff.canned import Filled, fill, pick_text
from staff.console import PREFIX, Console, Denied, Missing, route_class, staff_name
from staff.deps import Claimer, QueueViewer, Replier, RowId
from staff.events import event_stream
from staff.i18n import Translator, translator
from staff.permissions import (
    ESCALATED,
    ConversationView,
    Perm,
    Role,
    Staff,
    can,
    may_act,
    may_claim,
    may_note,
    may_reply,
    may_view,
)
from storage.models import Conversation
from storage.repository import NotFound, NotOpen
from storage.staff import ConsoleTx, NotClaimable, QueueRow

log = structlog.get_logger("tawasul.staff")

Text = Annotated[str, Form(max_length=4000)]


def view_of(conversation: Conversation) -> ConversationView:
    return ConversationView(
        conversation.status, conversation.assigned_to, conversation.handoff_reason
    )


def routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=route_class(console))

    def rows_view(t: Translator, staff: Staff, rows: list[QueueRow]) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        items = []
        for row in rows:
            c = row.conversation
            # A card is read over the shoulder and on the wall screen: IDs and phone numbers
            # are masked there as in the reports, and shown in full in the conversation.
            last = row.last_message
            text = mask_long_numbers(last.text or "") if last else ""
            files = len((last.payload or {}).get("attachments") or ()) if last else 0
            form = row.handed_over
            if form is not None and last is not None and last.created_at <= form.submitted_at:
                # The last message is the form's own (its "confirm and send"): the card
                # tells what was sent instead.
                text, files = "", 0
            items.append(
                {
                    "id": c.id,
                    "beneficiary": c.beneficiary_id,
                    "channel": c.last_channel,
                    "lang": (c.state or {}).get("lang") or "ar",
                    "reason": c.handoff_reason,
                    "escalated": c.handoff_reason == ESCALATED,
                    "waited": console.waited(t, c.queued_at, now),
                    "queued_at": c.queued_at,
                    "assigned_to": c.assigned_to,
                    "last": text[:160] + ("…" if len(text) > 160 else ""),
                    "files": files,
                    "held_since": row.held_since,
                    "held": console.waited(t, row.held_since, now) if row.held_since else "",
                    "form": form and console.form_title(form.form_id, t.lang),
                    "reference": form and form.reference,
                    "complaint": form is not None and form.form_id == "complaint",
                    "claimable": may_claim(staff, view_of(c)),
                }
            )
        return items

    async def queue_context(request: Request, staff: Staff) -> dict[str, Any]:
        t = translator(console.lang_of(request))
        async with console.db.session(write=False) as session:
            tx = ConsoleTx(session)
            waiting = await tx.queue_rows()
            mine = await tx.conversations_with_staff(staff.email)
            others = []
            if can(staff, Perm.SEE_ALL):
                everyone = await tx.conversations_with_staff(None)
                others = [r for r in everyone if r.conversation.assigned_to != staff.email]
            signature = await queue_signature(tx, staff)
        return {
            "waiting": rows_view(t, staff, waiting),
            "mine": rows_view(t, staff, mine),
            "others": rows_view(t, staff, others),
            "signature": signature,
        }

    async def queue_signature(tx: ConsoleTx, staff: Staff) -> str:
        # The minute is part of it so that waiting times move on screen.
        minute = datetime.now(UTC).strftime("%H%M")
        return f"{await tx.queue_signature()}-{minute}"

    @router.get("/", include_in_schema=False)
    async def queue_page(request: Request, staff: QueueViewer) -> Response:
        context = await queue_context(request, staff)
        return console.render(request, staff, "queue.html", **context)

    @router.get("/queue/rows", include_in_schema=False)
    async def queue_rows(request: Request, staff: QueueViewer) -> Response:
        context = await queue_context(request, staff)
        return console.render(request, staff, "_queue.html", **context)

    @router.get("/events/queue", include_in_schema=False)
    async def queue_events(
        request: Request, staff: QueueViewer, since: str = ""
    ) -> StreamingResponse:
        async def signature() -> dict[str, str]:
            async with console.db.session(write=False) as session:
                return {"changed": await queue_signature(ConsoleTx(session), staff)}

        return event_stream(request, signature, since={"changed": since}, poll=console.poll_seconds)

    # -- one conversation -----------------------------------------------------------------

    async def load(
        conversation_id: int, staff: Staff, rule: Callable[[Staff, ConversationView], bool]
    ) -> Conversation:
        async with console.db.session(write=False) as session:
            try:
                conversation = await ConsoleTx(session).conversation(conversation_id)
            except NotFound:
                raise Missing from None
        if not rule(staff, view_of(conversation)):
            raise Denied
        return conversation

    async def history_context(
        request: Request, staff: Staff, conversation: Conversation
    ) -> dict[str, Any]:
        async with console.db.session(write=False) as session:
            tx = ConsoleTx(session)
            history = await tx.history(conversation.beneficiary_id)
            signature = await tx.conversation_signature(conversation)
        return {"conversation": conversation, "history": history, "signature": signature}

    @router.get("/conversations/{conversation_id}", include_in_schema=False)
    async def conversation_page(
        request: Request,
        conversation_id: RowId,
        staff: QueueViewer,
        done: str = "",
        error: str = "",
    ) -> Response:
        try:
            conversation = await load(conversation_id, staff, may_view)
        except Denied:
            return await gone(request, staff, conversation_id)
        view = view_of(conversation)
        lang = (conversation.state or {}).get("lang") or "ar"
        async with console.db.session() as session:
            tx = ConsoleTx(session)
            person = await tx.beneficiary(conversation.beneficiary_id)
            requests = await tx.requests_of_beneficiary(conversation.beneficiary_id)
            contacts = await tx.contact_logs(conversation.beneficiary_id)
            canned = await tx.canned()
            colleagues = [
                u for u in await tx.staff_list(active_only=True) if u.email != staff.email
            ]
            await tx.audit(staff.actor, "conversation.viewed", str(conversation.id))
        values = {
            "name": person.display_name,
            "reference": requests[0].reference if requests else "",
            "staff": staff.label,
            "org": console.org(lang),
        }
        answers = [
            Filled(c.id, c.title, fill(pick_text(c.text_ar, c.text_en, lang), values))
            for c in canned
        ]
        context = await history_context(request, staff, conversation)
        return console.render(
            request,
            staff,
            "conversation.html",
            person=person,
            requests=requests,
            contacts=contacts[:5],
            canned=answers,
            colleagues=colleagues,
            supervisors=[u for u in colleagues if u.role != Role.AGENT.value],
            beneficiary_lang=lang,
            owned=may_reply(staff, view),
            manage=may_act(staff, view),
            claimable=may_claim(staff, view),
            can_note=may_note(staff, view),
            done=done,
            error=error,
            **context,
        )

    @router.get("/conversations/{conversation_id}/history", include_in_schema=False)
    async def history_fragment(
        request: Request, conversation_id: RowId, staff: QueueViewer
    ) -> Response:
        conversation = await load(conversation_id, staff, may_view)
        context = await history_context(request, staff, conversation)
        return console.render(request, staff, "_history.html", **context)

    @router.get("/events/conversations/{conversation_id}", include_in_schema=False)
    async def conversation_events(
        request: Request,
        conversation_id: RowId,
        staff: QueueViewer,
        history: str = "",
        status: str = "",
    ) -> StreamingResponse:
        await load(conversation_id, staff, may_view)

        async def signature() -> dict[str, str]:
            async with console.db.session(write=False) as session:
                tx = ConsoleTx(session)
                conversation = await tx.conversation(conversation_id)
                h, s = await tx.conversation_signature(conversation)
            return {"history": h, "status": s}

        return event_stream(
            request,
            signature,
            since={"history": history, "status": status},
            poll=console.poll_seconds,
        )

    # -- actions --------------------------------------------------------------------------

    Act = Callable[[ConsoleTx, Conversation], Awaitable[str | None]]

    async def act(
        conversation_id: int,
        staff: Staff,
        rule: Callable[[Staff, ConversationView], bool],
        action: Act,
    ) -> str | None:
        """Lock the conversation, check the rule on what is there now, then act."""
        async with console.db.session() as session:
            tx = ConsoleTx(session)
            try:
                conversation = await tx.conversation_for_update(conversation_id)
            except NotFound:
                raise Missing from None
            if not rule(staff, view_of(conversation)):
                raise Denied
            result = await action(tx, conversation)
        console.backend.outbox_wakeup.set()
        return result

    async def moved(
        request: Request, staff: Staff, conversation_id: int, kept: str = ""
    ) -> Response:
        """The conversation changed hands before this action (a colleague took it over, it
        went back to the queue, or it was closed): say so, and give back what was typed."""
        async with console.db.session(write=False) as session:
            current = await ConsoleTx(session).conversation(conversation_id)
        view = view_of(current)
        why = current.status if current.status in ("staff", "queued") else "bot"
        if why == "staff" and current.assigned_to != staff.email and may_claim(staff, view):
            # A supervisor writing in a colleague's conversation: take it over first.
            why = "held"
        return console.render(
            request,
            staff,
            "moved.html",
            status=409,
            why=why,
            claimable=may_claim(staff, view),
            owner=current.assigned_to,
            kept=kept.strip(),
            conversation_id=conversation_id,
            viewable=may_view(staff, view),
        )

    async def gone(request: Request, staff: Staff, conversation_id: int) -> Response:
        """A conversation this member held and may no longer open (a colleague closed it,
        transferred it or took it over, often while their page was open): say what happened
        and who did it, rather than "no permission"."""
        async with console.db.session(write=False) as session:
            move = await ConsoleTx(session).last_move(conversation_id, staff.email)
        if move is None:
            raise Denied
        kind = move.action.removeprefix("conversation.")
        to = str((move.detail or {}).get("to") or "")
        t = translator(console.lang_of(request))
        who = (
            staff_name(console.names, move.actor)
            if move.actor.startswith("staff:")
            else t.maybe("actor", move.actor)
        )
        return console.render(
            request,
            staff,
            "gone.html",
            status=409,
            kind=kind if t.has(f"gone.{kind}") else "other",
            who=who,
            to=staff_name(console.names, to) if to else "",
            at=move.at,
            conversation_id=conversation_id,
        )

    def page_of(conversation_id: int) -> str:
        return f"{PREFIX}/conversations/{conversation_id}"

    def catalog_text(conversation: Conversation, key: str) -> str:
        lang = (conversation.state or {}).get("lang") or "ar"
        return console.backend.catalog.text(lang, key)

    @router.post("/conversations/{conversation_id}/claim", include_in_schema=False)
    async def claim(conversation_id: RowId, staff: Claimer) -> Response:
        async def take(tx: ConsoleTx, conversation: Conversation) -> str | None:
            # Someone already answered this handover (a supervisor takes over, or it came
            # back from an escalation): the beneficiary is told another person carries on.
            again = conversation.status == "staff" or await tx.taken_since(
                conversation.id, conversation.queued_at
            )
            await tx.claim(conversation, staff.email)
            key = "staff.joined_another" if again else "staff.joined"
            await tx.say(conversation, catalog_text(conversation, key), kind="staff")
            return None

        try:
            await act(conversation_id, staff, may_claim, take)
        except (Denied, NotClaimable):
            async with console.db.session(write=False) as session:
                current = await ConsoleTx(session).conversation(conversation_id)
            if current.status == "staff" and current.assigned_to != staff.email:
                return console.back(f"{PREFIX}/?error=taken")
            raise
        log.info("staff.claimed", conversation_id=conversation_id)
        return console.back(page_of(conversation_id))

    @router.post("/conversations/{conversation_id}/reply", include_in_schema=False)
    async def reply(
        request: Request, conversation_id: RowId, staff: Replier, text: Text = ""
    ) -> Response:
        if not text.strip():
            return console.back(page_of(conversation_id) + "?error=empty")

        async def send(tx: ConsoleTx, conversation: Conversation) -> str | None:
            await tx.staff_reply(conversation, staff.email, text.strip())
            return None

        try:
            await act(conversation_id, staff, may_reply, send)
        except Denied:
            return await moved(request, staff, conversation_id, text)
        return console.back(page_of(conversation_id))

    @router.post("/conversations/{conversation_id}/note", include_in_schema=False)
    async def note(
        request: Request, conversation_id: RowId, staff: Replier, text: Text = ""
    ) -> Response:
        if not text.strip():
            return console.back(page_of(conversation_id) + "?error=empty")

        async def write(tx: ConsoleTx, conversation: Conversation) -> str | None:
            await tx.add_note(conversation, staff.email, text.strip())
            return None

        try:
            await act(conversation_id, staff, may_note, write)
        except Denied:
            return await moved(request, staff, conversation_id, text)
        return console.back(page_of(conversation_id), "note")

    @router.post("/conversations/{conversation_id}/transfer", include_in_schema=False)
    async def transfer(
        request: Request,
        conversation_id: RowId,
        staff: Replier,
        to: Annotated[str, Form(max_length=320)] = "",
    ) -> Response:
        async with console.db.session(write=False) as session:
            target = await ConsoleTx(session).staff_by_email(to)
        if target is None or not target.active or target.email == staff.email:
            return console.back(page_of(conversation_id) + "?error=target")

        async def move(tx: ConsoleTx, conversation: Conversation) -> str | None:
            await tx.transfer(conversation, staff.email, target.email)
            return None

        try:
            await act(conversation_id, staff, may_act, move)
        except Denied:
            return await moved(request, staff, conversation_id)
        return console.back(f"{PREFIX}/", "transferred")

    @router.post("/conversations/{conversation_id}/escalate", include_in_schema=False)
    async def escalate(
        request: Request,
        conversation_id: RowId,
        staff: Replier,
        text: Text = "",
    ) -> Response:
        async def up(tx: ConsoleTx, conversation: Conversation) -> str | None:
            if text.strip():
                await tx.add_note(conversation, staff.email, text.strip())
            await tx.escalate(conversation, staff.email, ESCALATED)
            return None

        try:
            await act(conversation_id, staff, may_act, up)
        except Denied:
            return await moved(request, staff, conversation_id, text)
        return console.back(f"{PREFIX}/", "escalated")

    @router.post("/conversations/{conversation_id}/release", include_in_schema=False)
    async def release(request: Request, conversation_id: RowId, staff: Replier) -> Response:
        async def give_back(tx: ConsoleTx, conversation: Conversation) -> str | None:
            await tx.release(conversation, staff.email)
            await tx.say(
                conversation, catalog_text(conversation, "staff.returned"), kind="notification"
            )
            return None

        try:
            await act(conversation_id, staff, may_act, give_back)
        except Denied:
            return await moved(request, staff, conversation_id)
        return console.back(f"{PREFIX}/", "released")

    @router.post("/conversations/{conversation_id}/close", include_in_schema=False)
    async def close(request: Request, conversation_id: RowId, staff: Replier) -> Response:
        try:
            await load(conversation_id, staff, may_act)
            await console.backend.close_conversation(conversation_id, actor=staff.actor)
        except (Denied, NotOpen):
            return await moved(request, staff, conversation_id)
        log.info("staff.closed", conversation_id=conversation_id)
        return console.back(f"{PREFIX}/", "closed")

    return router
