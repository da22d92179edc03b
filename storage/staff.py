"""Repository of the staff console, over one transaction like ``Tx`` (which it extends)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, func, select, update

from conversations.messages import Reply
from storage.followup import OPEN_REQUESTS
from storage.models import (
    Conversation,
    Document,
    Message,
    OutboxItem,
    Request,
    utcnow,
)
from storage.repository import NotFound, Queued, _xact_lock
from storage.staff_models import (
    Handling,
    LoginAttempt,
    RequestVerification,
    StaffSession,
    StaffSetting,
    StaffUser,
)
from storage.staff_people import PeopleTx

# Sign-in attempts are limited per minute; the advisory lock's key space for them.
LOGIN_WINDOW = timedelta(minutes=1)
_SIGNING_IN = 0x7461_0101


def _address_key(ip: str) -> int:
    return int.from_bytes(hashlib.sha256(ip.encode()).digest()[:4], "big")


class StaffExists(ValueError):
    pass


class NotClaimable(ValueError):
    """Someone else took the conversation first, or it left the queue."""


@dataclass(frozen=True, slots=True)
class QueueRow:
    conversation: Conversation
    last_message: Message | None
    # Since when its holder has it (conversations with staff).
    held_since: datetime | None = None
    # The request or ticket whose form handed the conversation over (handoff reason "form").
    handed_over: Request | None = None


@dataclass(frozen=True, slots=True)
class HistoryItem:
    message: Message
    delivery: OutboxItem | None


# How a staff member's turn with a conversation ended, as the history tells it (a transfer
# and a supervisor's taking over are told by the next turn's start).
TURN_ENDS = frozenset({"escalated", "returned", "closed", "requeued"})


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """A conversation changing hands, between the messages: taken, transferred to someone,
    sent back to the queue, given back to the bot, closed."""

    at: datetime
    conversation_id: int
    kind: str
    staff: str


def interleave(
    items: list[HistoryItem], events: list[HistoryEvent]
) -> list[HistoryItem | HistoryEvent]:
    """Messages stay in the order they were stored; each event goes before the first message
    our clock places after it (an inbound message's own time is the channel's clock, which
    may run ahead or behind: its processing time is ours)."""
    events = sorted(events, key=lambda e: e.at)
    out: list[HistoryItem | HistoryEvent] = []
    for item in items:
        m = item.message
        ours = m.processed_at if m.direction == "in" else m.created_at
        while events and ours is not None and events[0].at < ours:
            out.append(events.pop(0))
        out.append(item)
    return out + events


def turn_events(turns: list[Handling]) -> list[HistoryEvent]:
    """The events of staff members' turns (in the order they were taken)."""
    events: list[HistoryEvent] = []
    previous: dict[int, Handling] = {}
    for turn in turns:
        before = previous.get(turn.conversation_id)
        moved = before is not None and before.outcome == "transferred"
        events.append(
            HistoryEvent(
                turn.claimed_at,
                turn.conversation_id,
                "transferred" if moved else "taken",
                turn.staff,
            )
        )
        if turn.ended_at is not None and turn.outcome in TURN_ENDS:
            events.append(
                HistoryEvent(turn.ended_at, turn.conversation_id, turn.outcome, turn.staff)
            )
        previous[turn.conversation_id] = turn
    return events


@dataclass(frozen=True, slots=True)
class RequestRow:
    request: Request
    late: bool
    verified: bool


# Requests shown on one page of the list.
REQUESTS_PAGE = 100


@dataclass(frozen=True, slots=True)
class RequestPage:
    """One page of the requests list, and where it sits among all of them."""

    rows: list[RequestRow]
    total: int
    page: int
    pages: int
    offset: int

    @property
    def first(self) -> int:
        return self.offset + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.offset + len(self.rows)


class ConsoleTx(PeopleTx):
    """Everything the console reads and writes, in the caller's transaction."""

    # -- staff accounts ---------------------------------------------------------------------

    async def add_staff(
        self, email: str, role: str, password_hash: str, name: str = "", *, actor: str = "cli"
    ) -> int:
        email = email.strip().lower()
        if await self.staff_by_email(email) is not None:
            raise StaffExists(email)
        user = StaffUser(email=email, role=role, password_hash=password_hash, name=name)
        self.session.add(user)
        await self.session.flush()
        await self.audit(actor, "staff.added", email, role=role)
        return user.id

    async def staff_by_email(self, email: str) -> StaffUser | None:
        return await self.session.scalar(
            select(StaffUser).where(StaffUser.email == email.strip().lower())
        )

    async def staff_list(self, *, active_only: bool = False) -> list[StaffUser]:
        stmt = select(StaffUser).order_by(StaffUser.email)
        if active_only:
            stmt = stmt.where(StaffUser.active.is_(True))
        return list(await self.session.scalars(stmt))

    async def staff_names(self) -> dict[str, str]:
        """Each account's name by its address (accounts without a name left out)."""
        rows = await self.session.execute(
            select(StaffUser.email, StaffUser.name).where(StaffUser.name != "")
        )
        return {email.lower(): name for email, name in rows}

    async def count_staff(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(StaffUser)) or 0)

    async def set_staff_active(self, email: str, active: bool, *, actor: str) -> bool:
        user = await self.staff_by_email(email)
        if user is None:
            return False
        user.active = active
        if not active:
            await self.session.execute(delete(StaffSession).where(StaffSession.staff_id == user.id))
        await self.audit(actor, "staff.enabled" if active else "staff.disabled", user.email)
        return True

    async def requeue_held_by(self, email: str, *, actor: str) -> list[int]:
        """Put the conversations a staff member holds back in the queue, in their place (their
        account is being disabled: nobody would answer them). Their ids."""
        held = list(
            await self.session.scalars(
                select(Conversation)
                .where(Conversation.status == "staff", Conversation.assigned_to == email)
                .order_by(Conversation.id)
                .with_for_update()
            )
        )
        for conversation in held:
            await self.end_turn(conversation.id, "requeued")
            conversation.status = "queued"
            conversation.assigned_to = None
            conversation.queued_at = conversation.queued_at or utcnow()
            conversation.updated_at = utcnow()
            await self.audit(actor, "conversation.requeued", str(conversation.id), staff=email)
        return [c.id for c in held]

    async def set_staff_role(self, email: str, role: str, *, actor: str) -> bool:
        user = await self.staff_by_email(email)
        if user is None:
            return False
        if user.role != role:
            await self.audit(actor, "staff.role", user.email, before=user.role, after=role)
            user.role = role
        return True

    async def active_admins(self) -> list[str]:
        rows = await self.session.scalars(
            select(StaffUser.email).where(StaffUser.role == "admin", StaffUser.active.is_(True))
        )
        return list(rows)

    async def set_password(self, email: str, password_hash: str, *, actor: str) -> bool:
        user = await self.staff_by_email(email)
        if user is None:
            return False
        user.password_hash = password_hash
        await self.session.execute(delete(StaffSession).where(StaffSession.staff_id == user.id))
        await self.audit(actor, "staff.password", user.email)
        return True

    # -- sessions and login attempts --------------------------------------------------------

    async def open_session(self, user: StaffUser, token_hash: str, lifetime: timedelta) -> None:
        now = utcnow()
        user.last_login_at = now
        self.session.add(
            StaffSession(
                token_hash=token_hash,
                staff_id=user.id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + lifetime,
            )
        )
        await self.session.execute(delete(StaffSession).where(StaffSession.expires_at < now))

    async def session_user(self, token_hash: str) -> tuple[StaffSession, StaffUser] | None:
        row = (
            await self.session.execute(
                select(StaffSession, StaffUser)
                .join(StaffUser, StaffUser.id == StaffSession.staff_id)
                .where(
                    StaffSession.token_hash == token_hash,
                    StaffSession.expires_at > utcnow(),
                    StaffUser.active.is_(True),
                )
            )
        ).first()
        return (row[0], row[1]) if row is not None else None

    async def close_session(self, token_hash: str) -> None:
        await self.session.execute(
            delete(StaffSession).where(StaffSession.token_hash == token_hash)
        )

    async def reserve_login(
        self, email: str, ip: str, *, per_account: int, per_address: int
    ) -> int | None:
        """Count a sign-in attempt against the limits before its password is checked.

        The attempt is written as a failure at once, in the transaction that counted the
        earlier ones (and under a lock of the client address on PostgreSQL; SQLite has one
        writer at a time): attempts made in parallel each see the others, so no more than
        ``per_account`` failures a minute for one address and account, nor ``per_address``
        over every account from one address (password spraying), are ever checked. Returns
        the attempt's id (``login_succeeded`` clears it), or None when over a limit.
        """
        await _xact_lock(self.session, _SIGNING_IN, _address_key(ip), wait=True)
        now = utcnow()
        since = now - LOGIN_WINDOW
        email, ip = email[:320], ip[:64]
        failed = (LoginAttempt.ip == ip, LoginAttempt.at >= since, LoginAttempt.ok.is_(False))
        of_address = await self.session.scalar(
            select(func.count()).select_from(LoginAttempt).where(*failed)
        )
        if int(of_address or 0) >= per_address:
            return None
        of_account = await self.session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(LoginAttempt.email == email, *failed)
        )
        if int(of_account or 0) >= per_account:
            return None
        attempt = LoginAttempt(email=email, ip=ip, at=now, ok=False)
        self.session.add(attempt)
        await self.session.execute(
            delete(LoginAttempt).where(LoginAttempt.at < now - timedelta(days=30))
        )
        await self.session.flush()
        return attempt.id

    async def login_succeeded(self, attempt_id: int) -> None:
        await self.session.execute(
            update(LoginAttempt).where(LoginAttempt.id == attempt_id).values(ok=True)
        )

    async def setting(self, name: str) -> str | None:
        row = await self.session.get(StaffSetting, name)
        return row.value if row is not None else None

    async def set_setting(self, name: str, value: str) -> None:
        row = await self.session.get(StaffSetting, name)
        if row is None:
            self.session.add(StaffSetting(name=name, value=value, updated_at=utcnow()))
        else:
            row.value = value
            row.updated_at = utcnow()

    # -- the queue and conversations --------------------------------------------------------

    async def queue_rows(self) -> list[QueueRow]:
        return [
            QueueRow(c, m, handed_over=await self._handed_over(c)) for c, m in await self.queue()
        ]

    async def conversations_with_staff(self, email: str | None) -> list[QueueRow]:
        """Conversations staff hold: one member's, or everyone's when ``email`` is None."""
        stmt = select(Conversation).where(Conversation.status == "staff")
        if email is not None:
            stmt = stmt.where(Conversation.assigned_to == email)
        rows = list(await self.session.scalars(stmt.order_by(Conversation.updated_at.desc())))
        out = []
        for c in rows:
            turn = await self.open_turn(c.id)
            out.append(
                QueueRow(
                    c,
                    await self._last_inbound(c.id),
                    held_since=turn.claimed_at if turn is not None else c.updated_at,
                    handed_over=await self._handed_over(c),
                )
            )
        return out

    async def _handed_over(self, conversation: Conversation) -> Request | None:
        """The request or ticket whose form handed the conversation over, if it was one."""
        if conversation.handoff_reason != "form":
            return None
        return await self.session.scalar(
            select(Request)
            .where(Request.conversation_id == conversation.id, Request.status != "draft")
            .order_by(Request.id.desc())
            .limit(1)
        )

    async def _last_inbound(self, conversation_id: int) -> Message | None:
        return await self.session.scalar(
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.direction == "in")
            .order_by(Message.id.desc())
            .limit(1)
        )

    async def queue_signature(self) -> str:
        """Changes whenever a conversation enters, leaves or changes hands in the queue, or
        a message arrives."""
        rows = await self.session.execute(
            select(Conversation.id, Conversation.status, Conversation.assigned_to)
            .where(Conversation.status.in_(("queued", "staff")))
            .order_by(Conversation.id)
        )
        newest = await self.session.scalar(select(func.max(Message.id)))
        return hashlib.sha256(repr(([tuple(r) for r in rows], newest)).encode()).hexdigest()[:16]

    async def conversation_signature(self, conversation: Conversation) -> tuple[str, str]:
        """(history, status): the first changes with any message or delivery, the second
        when the conversation changes hands."""
        newest = await self.session.scalar(
            select(func.max(Message.id)).where(
                Message.beneficiary_id == conversation.beneficiary_id
            )
        )
        deliveries = await self.session.execute(
            select(OutboxItem.status, func.count())
            .where(OutboxItem.conversation_id == conversation.id)
            .group_by(OutboxItem.status)
        )
        history = f"{newest}:{sorted(tuple(r) for r in deliveries)}"
        status = f"{conversation.status}:{conversation.assigned_to}"
        return history, status

    async def conversation(self, conversation_id: int) -> Conversation:
        row = await self.session.get(Conversation, conversation_id)
        if row is None:
            raise NotFound(str(conversation_id))
        return row

    async def history(
        self, beneficiary_id: int, limit: int = 500
    ) -> list[HistoryItem | HistoryEvent]:
        """Every message of the beneficiary across channels, with each reply's delivery, and
        between them the moments their conversations changed hands."""
        rows = list(
            await self.session.scalars(
                select(Message)
                .where(Message.beneficiary_id == beneficiary_id)
                .order_by(Message.id.desc())
                .limit(limit)
            )
        )
        rows.reverse()
        outbound = [r.id for r in rows if r.direction == "out"]
        deliveries = {o.message_id: o for o in await self.outbox_for_messages(outbound)}
        items = [HistoryItem(r, deliveries.get(r.id)) for r in rows]
        if not rows:
            return list(items)
        turns = list(
            await self.session.scalars(
                select(Handling)
                .join(Conversation, Conversation.id == Handling.conversation_id)
                .where(Conversation.beneficiary_id == beneficiary_id)
                .order_by(Handling.id)
            )
        )
        oldest = rows[0].created_at
        return interleave(items, [e for e in turn_events(turns) if e.at >= oldest])

    async def claim(self, conversation: Conversation, staff: str) -> None:
        """Take a conversation; the engine stays silent while its status is ``staff``."""
        if conversation.status not in ("queued", "staff"):
            raise NotClaimable(str(conversation.id))
        now = utcnow()
        available: datetime | None = now
        if conversation.status == "staff":
            # Taken over from a colleague: theirs from now.
            await self.end_turn(conversation.id, "reassigned")
        else:
            available = await self._queued_since(conversation)
        conversation.status = "staff"
        conversation.assigned_to = staff
        conversation.updated_at = now
        self.session.add(
            Handling(
                conversation_id=conversation.id,
                staff=staff,
                reason=conversation.handoff_reason,
                queued_at=available,
                claimed_at=now,
            )
        )
        await self.audit(f"staff:{staff}", "conversation.claimed", str(conversation.id))

    async def _queued_since(self, conversation: Conversation) -> datetime | None:
        """Since when a queued conversation could be taken: it keeps its first place in the
        queue (``queued_at``) when a colleague escalates it or it is put back, but whoever
        takes it then could only do so from that moment (the end of the last turn)."""
        ended = await self.session.scalar(
            select(func.max(Handling.ended_at)).where(Handling.conversation_id == conversation.id)
        )
        since = conversation.queued_at
        if ended is not None and (since is None or ended > since):
            return ended
        return since

    async def staff_reply(self, conversation: Conversation, staff: str, text: str) -> Queued:
        """A staff member's message, to the beneficiary's last channel through the outbox.

        It counts in the turn (replies, first reply) only when its author holds the
        conversation: a colleague's reply is theirs (the reports count replies by author)."""
        [row] = await self.queue_replies(
            conversation, [Reply(text)], author=f"staff:{staff}", kind="staff"
        )
        conversation.updated_at = utcnow()
        handling = await self.open_turn(conversation.id)
        if handling is not None and handling.staff == staff:
            handling.replies += 1
            if handling.first_reply_at is None:
                handling.first_reply_at = utcnow()
        await self.audit(f"staff:{staff}", "conversation.replied", str(conversation.id))
        return row

    async def say(self, conversation: Conversation, text: str, *, kind: str) -> None:
        """A sentence of the console's own to the beneficiary (from the catalogue)."""
        await self.queue_replies(conversation, [Reply(text)], author="bot", kind=kind)

    async def add_note(self, conversation: Conversation, staff: str, text: str) -> None:
        self.session.add(
            Message(
                conversation_id=conversation.id,
                beneficiary_id=conversation.beneficiary_id,
                direction="note",
                channel=conversation.last_channel or "webchat",
                author=f"staff:{staff}",
                text=text,
                payload={},
                created_at=utcnow(),
            )
        )
        await self.audit(f"staff:{staff}", "conversation.note", str(conversation.id))

    async def transfer(self, conversation: Conversation, actor: str, to: str) -> None:
        await self.end_turn(conversation.id, "transferred")
        now = utcnow()
        conversation.assigned_to = to
        conversation.updated_at = now
        # Theirs from now: their first reply is counted from the transfer.
        self.session.add(
            Handling(
                conversation_id=conversation.id,
                staff=to,
                reason=conversation.handoff_reason,
                queued_at=now,
                claimed_at=now,
            )
        )
        await self.audit(f"staff:{actor}", "conversation.transferred", str(conversation.id), to=to)

    async def escalate(self, conversation: Conversation, actor: str, reason: str) -> None:
        """Back to the queue, kept in its place, for a supervisor to take."""
        await self.end_turn(conversation.id, "escalated")
        conversation.status = "queued"
        conversation.assigned_to = None
        conversation.handoff_reason = reason
        conversation.queued_at = conversation.queued_at or utcnow()
        conversation.updated_at = utcnow()
        await self.audit(f"staff:{actor}", "conversation.escalated", str(conversation.id))

    async def release(self, conversation: Conversation, actor: str) -> None:
        """Give the conversation back to the bot without a survey."""
        await self.end_turn(conversation.id, "returned")
        conversation.status = "bot"
        conversation.assigned_to = None
        conversation.handoff_reason = None
        conversation.queued_at = None
        conversation.updated_at = utcnow()
        await self.audit(f"staff:{actor}", "conversation.returned", str(conversation.id))

    # -- requests ---------------------------------------------------------------------------

    async def request_list(
        self, status: str | None, now: datetime, *, page: int = 1, per_page: int = REQUESTS_PAGE
    ) -> RequestPage:
        """One page of the requests: late ones first, then by due date (those without one
        last), ordered in the database so that no request falls off the list unseen."""
        shown = Request.status != "draft" if not status else Request.status == status
        total = int(
            await self.session.scalar(select(func.count()).select_from(Request).where(shown)) or 0
        )
        pages = max(1, -(-total // per_page))
        page = min(max(page, 1), pages)
        late = and_(
            Request.status.in_(OPEN_REQUESTS), Request.due_at.is_not(None), Request.due_at < now
        )
        stmt = (
            select(Request)
            .where(shown)
            .order_by(
                case((late, 0), else_=1),
                case((Request.due_at.is_(None), 1), else_=0),
                Request.due_at,
                Request.id,
            )
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
        rows = list(await self.session.scalars(stmt))
        verified = set(
            await self.session.scalars(
                select(RequestVerification.request_id).where(
                    RequestVerification.request_id.in_([r.id for r in rows])
                )
            )
        )
        items = [RequestRow(r, is_late(r, now), r.id in verified) for r in rows]
        return RequestPage(items, total, page, pages, (page - 1) * per_page)

    async def verification(self, request_id: int) -> RequestVerification | None:
        return await self.session.scalar(
            select(RequestVerification).where(RequestVerification.request_id == request_id)
        )

    async def verify(self, request: Request, staff: str, note: str) -> bool:
        if await self.verification(request.id) is not None:
            return False
        self.session.add(RequestVerification(request_id=request.id, verified_by=staff, note=note))
        await self.audit(f"staff:{staff}", "request.verified", request.reference)
        return True

    async def conversations_of(self, beneficiary_id: int) -> list[Conversation]:
        return list(
            await self.session.scalars(
                select(Conversation).where(Conversation.beneficiary_id == beneficiary_id)
            )
        )

    async def is_document_of(self, beneficiary_id: int, ref: str) -> bool:
        """Whether the file is a document of one of the beneficiary's requests."""
        found = await self.session.scalar(
            select(Document.id)
            .join(Request, Request.id == Document.request_id)
            .where(Document.ref == ref, Request.beneficiary_id == beneficiary_id)
            .limit(1)
        )
        return found is not None

    async def document(self, document_id: int) -> tuple[Document, Request]:
        row = (
            await self.session.execute(
                select(Document, Request)
                .join(Request, Request.id == Document.request_id)
                .where(Document.id == document_id)
            )
        ).first()
        if row is None:
            raise NotFound(str(document_id))
        return row[0], row[1]


def is_late(request: Request, now: datetime) -> bool:
    return request.status in OPEN_REQUESTS and request.due_at is not None and request.due_at < now
