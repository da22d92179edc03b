"""The console's repository for people: beneficiaries' records, contacts, export,
anonymisation, and the canned answers staff use with them."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, or_, select, type_coerce, update

from conversations.fields import normalize_phone
from conversations.messages import shown_address
from conversations.normalize import normalize_arabic, to_latin_digits
from conversations.references import canonical_reference, has_reference
from storage.crypto import Keyring, keyring_for
from storage.followup import RequestInfo, request_info
from storage.models import (
    Beneficiary,
    Conversation,
    Document,
    Identity,
    Message,
    OutboxItem,
    Request,
    RequestAnswer,
    RequestStatusChange,
    SurveyAnswer,
    hashed_match,
    utcnow,
)
from storage.repository import NotFound, Tx
from storage.retention import attachment_refs
from storage.staff_models import CannedAnswer, ContactLog, RequestVerification
from storage.threads import forget_subjects, thread_ids

CONTACT_KINDS = ("visit", "call", "letter")

# What a search shows at most of the people, and of the requests.
SEARCH_LIMIT = 50
# A national ID, an iqama or a phone number as staff type it: digits, spaces, dashes, "+".
_NUMBER = re.compile(r"\+?[\d\s\-‐‑‒–—().]+")
_NOT_DIGIT = re.compile(r"\D")


@dataclass(frozen=True, slots=True)
class Found:
    """What a search found, and how the query was read: a request's ``reference``, a
    ``number`` (national ID or phone, compared by keyed hash) or a ``name``."""

    kind: str
    people: list[Beneficiary] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    more: bool = False  # more people matched than are shown


# Names read and decrypted at a time by a search by name.
NAMES_AT_ONCE = 2000


def _named(stored: Sequence[Any], wanted: Sequence[str], keyring: Keyring) -> list[int]:
    """The ids (in the order given) of the names, as stored, that hold every wanted word."""
    found = []
    for person_id, name in stored:
        words = normalize_arabic(keyring.decrypt(name)).lower()
        if all(w in words for w in wanted):
            found.append(person_id)
    return found


def _words(text: str) -> list[str]:
    return normalize_arabic(text).lower().split()


class PeopleTx(Tx):
    # -- beneficiaries ----------------------------------------------------------------------

    async def beneficiary(self, beneficiary_id: int) -> Beneficiary:
        row = await self.session.get(Beneficiary, beneficiary_id)
        if row is None:
            raise NotFound(str(beneficiary_id))
        return row

    async def find(
        self, *, national_id: str | None = None, phone: str | None = None
    ) -> list[Beneficiary]:
        """Beneficiaries with this national ID, or this phone number (their own, or one they
        write from), compared by keyed hash: the clear values are encrypted."""
        conditions = []
        if national_id:
            conditions.append(
                hashed_match(Beneficiary.national_id_hash, Beneficiary.national_id, national_id)
            )
        if phone:
            conditions.append(hashed_match(Beneficiary.phone_hash, Beneficiary.phone, phone))
            conditions.append(
                Beneficiary.id.in_(
                    select(Identity.beneficiary_id).where(Identity.lookup("phone", phone))
                )
            )
        if not conditions:
            return []
        rows = await self.session.scalars(
            select(Beneficiary).where(or_(*conditions)).order_by(Beneficiary.id)
        )
        return list(rows)

    async def search(self, query: str) -> Found:
        """Beneficiaries and requests by a request's reference, a national ID or iqama
        number, a phone number (their own or one they write from) or a name.

        IDs and phones are encrypted: they are found by their keyed hash, so only the whole
        number finds them. Names are encrypted too: they are read and compared here, every
        word of the query in the name (Arabic letters folded, أ/ا/إ and ة/ه alike)."""
        text = to_latin_digits(query).strip()
        if not text:
            return Found("")
        if has_reference(text):
            requests = list(
                await self.session.scalars(
                    select(Request).where(
                        Request.reference == canonical_reference(text), Request.status != "draft"
                    )
                )
            )
            people = [await self.beneficiary(r.beneficiary_id) for r in requests]
            return Found("reference", people, requests)
        if _NUMBER.fullmatch(text):
            digits = _NOT_DIGIT.sub("", text)
            national_id = digits if len(digits) == 10 and digits[0] in "12" else None
            people = await self.find(national_id=national_id, phone=normalize_phone(text))
            return Found("number", people, await self._requests_of(people))
        # Names are encrypted, so every one is read and decrypted: about a second for 100,000
        # beneficiaries. They are read as stored, a few thousand at a time, and decrypted
        # and compared in a worker thread, so that the server's event loop (webhooks, the
        # bot's steps) goes on meanwhile.
        stored = await self.session.stream(
            select(Beneficiary.id, type_coerce(Beneficiary.display_name, String()))
            .where(Beneficiary.display_name != "")
            .order_by(Beneficiary.id.desc())
            .execution_options(yield_per=NAMES_AT_ONCE)
        )
        keyring = keyring_for(self.session.get_bind().dialect)
        wanted = _words(text)
        ids: list[int] = []
        async for names in stored.partitions():
            ids += await asyncio.to_thread(_named, names, wanted, keyring)
        shown = ids[:SEARCH_LIMIT]
        people = list(
            await self.session.scalars(
                select(Beneficiary).where(Beneficiary.id.in_(shown)).order_by(Beneficiary.id.desc())
            )
        )
        return Found("name", people, await self._requests_of(people), len(ids) > len(shown))

    async def _requests_of(self, people: Sequence[Beneficiary]) -> list[Request]:
        """Their requests, newest first (at most ``SEARCH_LIMIT``)."""
        if not people:
            return []
        rows = await self.session.scalars(
            select(Request)
            .where(Request.beneficiary_id.in_([p.id for p in people]), Request.status != "draft")
            .order_by(Request.id.desc())
            .limit(SEARCH_LIMIT)
        )
        return list(rows)

    async def identities(self, beneficiary_id: int) -> list[Identity]:
        rows = await self.session.scalars(
            select(Identity).where(Identity.beneficiary_id == beneficiary_id).order_by(Identity.id)
        )
        return list(rows)

    async def contact_logs(self, beneficiary_id: int) -> list[ContactLog]:
        rows = await self.session.scalars(
            select(ContactLog)
            .where(ContactLog.beneficiary_id == beneficiary_id)
            .order_by(ContactLog.happened_at.desc())
        )
        return list(rows)

    async def add_contact(
        self, beneficiary_id: int, kind: str, note: str, happened_at: datetime, staff: str
    ) -> None:
        if kind not in CONTACT_KINDS:
            raise ValueError(kind)
        self.session.add(
            ContactLog(
                beneficiary_id=beneficiary_id,
                kind=kind,
                note=note,
                happened_at=happened_at,
                staff=staff,
            )
        )
        await self.audit(f"staff:{staff}", "contact.logged", str(beneficiary_id), kind=kind)

    async def surveys_of(self, beneficiary_id: int) -> list[SurveyAnswer]:
        rows = await self.session.scalars(
            select(SurveyAnswer)
            .where(SurveyAnswer.beneficiary_id == beneficiary_id)
            .order_by(SurveyAnswer.id)
        )
        return list(rows)

    async def export(self, beneficiary_id: int) -> dict[str, Any]:
        """Everything stored about one beneficiary (P13)."""
        person = await self.beneficiary(beneficiary_id)
        requests = []
        for request in await self.requests_of_beneficiary(beneficiary_id):
            details = await self.request_details(request)
            requests.append(
                {
                    **_columns(request, exclude={"verify_last4"}),
                    "answers": [_columns(a) for a in details["answers"]],
                    "documents": [_columns(d) for d in details["documents"]],
                    "history": [_columns(h) for h in details["history"]],
                    "information": [
                        _columns(item.info) for item in await request_info(self.session, request.id)
                    ],
                }
            )
        messages = await self.session.scalars(
            select(Message)
            .where(Message.beneficiary_id == beneficiary_id, Message.direction != "note")
            .order_by(Message.id)
        )
        conversations = await self.session.scalars(
            select(Conversation)
            .where(Conversation.beneficiary_id == beneficiary_id)
            .order_by(Conversation.id)
        )
        return {
            # The keyed lookup hashes are derived from values already given.
            "beneficiary": _columns(person, exclude={"phone_hash", "national_id_hash"}),
            "identities": [
                _columns(i, exclude={"address_hash"})
                | {"address": shown_address(i.kind, i.address)}
                for i in await self.identities(beneficiary_id)
            ],
            "conversations": [_columns(c, exclude={"state"}) for c in conversations],
            "messages": [_columns(m, exclude={"payload"}) for m in messages],
            "requests": requests,
            "contacts": [_columns(c) for c in await self.contact_logs(beneficiary_id)],
            "surveys": [_columns(s) for s in await self.surveys_of(beneficiary_id)],
        }

    async def anonymise(self, beneficiary_id: int, actor: str) -> list[str]:
        """Erase what identifies the person; keep counts and the audit trail. Returns the
        attachment references whose files the caller deletes after the commit."""
        person = await self.beneficiary(beneficiary_id)
        person.display_name = ""
        person.phone = None
        person.national_id = None
        for identity in await self.identities(beneficiary_id):
            identity.address = f"anonymised:{identity.id}:{secrets.token_hex(6)}"
            identity.unreachable = True
        # The files sent outside a form are known only from the payloads about to be
        # emptied: their references are taken first, or nothing could find the files again.
        # So are the email threads they wrote in, whose subjects are kept apart.
        sent: set[str] = set()
        payloads = list(
            await self.session.scalars(
                select(Message.payload).where(Message.beneficiary_id == beneficiary_id)
            )
        )
        for payload in payloads:
            sent |= attachment_refs(payload or {})
        subjects = await forget_subjects(self.session, thread_ids(payloads))
        await self.session.execute(
            update(Message)
            .where(Message.beneficiary_id == beneficiary_id)
            .values(text="", payload={})
        )
        conversations = await self.session.scalars(
            select(Conversation).where(Conversation.beneficiary_id == beneficiary_id)
        )
        for conversation in conversations:
            conversation.state = {}
            if conversation.status != "closed":
                conversation.status = "closed"
                conversation.closed_at = utcnow()
            conversation.assigned_to = None
        request_ids = [r.id for r in await self.requests_of_beneficiary(beneficiary_id)]
        await self.session.execute(
            update(RequestAnswer)
            .where(RequestAnswer.request_id.in_(request_ids))
            .values(value=None, display="")
        )
        await self.session.execute(
            update(Request).where(Request.id.in_(request_ids)).values(verify_last4=None)
        )
        await self.session.execute(
            update(RequestInfo).where(RequestInfo.request_id.in_(request_ids)).values(text="")
        )
        # What staff wrote on the request (a status's message, a verification) can name the
        # person as readily as their answers: "Ahmed, ID 1012345672, matches the lease".
        await self.session.execute(
            update(RequestStatusChange)
            .where(RequestStatusChange.request_id.in_(request_ids))
            .values(note="")
        )
        await self.session.execute(
            update(RequestVerification)
            .where(RequestVerification.request_id.in_(request_ids))
            .values(note="")
        )
        documents = set(
            await self.session.scalars(
                select(Document.ref).where(Document.request_id.in_(request_ids))
            )
        )
        refs = sorted(r for r in documents | sent if r)
        await self.session.execute(
            update(Document).where(Document.request_id.in_(request_ids)).values(filename="")
        )
        await self.session.execute(
            update(OutboxItem)
            .where(
                OutboxItem.conversation_id.in_(
                    select(Conversation.id).where(Conversation.beneficiary_id == beneficiary_id)
                ),
                OutboxItem.status.in_(("pending", "held")),
            )
            .values(status="cancelled", last_error="anonymised")
        )
        await self.session.execute(
            update(OutboxItem)
            .where(
                OutboxItem.conversation_id.in_(
                    select(Conversation.id).where(Conversation.beneficiary_id == beneficiary_id)
                )
            )
            .values(address="")
        )
        await self.session.execute(
            update(ContactLog).where(ContactLog.beneficiary_id == beneficiary_id).values(note="")
        )
        await self.session.execute(
            update(SurveyAnswer)
            .where(SurveyAnswer.beneficiary_id == beneficiary_id)
            .values(comment=None)
        )
        await self.audit(
            actor,
            "beneficiary.anonymised",
            str(beneficiary_id),
            documents=len(documents),
            files=len(refs),
            subjects=subjects,
        )
        return refs

    # -- canned answers ---------------------------------------------------------------------

    async def canned(self, *, active_only: bool = True) -> list[CannedAnswer]:
        stmt = select(CannedAnswer).order_by(CannedAnswer.title)
        if active_only:
            stmt = stmt.where(CannedAnswer.active.is_(True))
        return list(await self.session.scalars(stmt))

    async def save_canned(
        self,
        canned_id: int | None,
        *,
        title: str,
        text_ar: str,
        text_en: str,
        active: bool,
        staff: str,
    ) -> int:
        row = await self.session.get(CannedAnswer, canned_id) if canned_id else None
        if canned_id and row is None:
            raise NotFound(str(canned_id))
        if row is None:
            row = CannedAnswer()
            self.session.add(row)
        row.title, row.text_ar, row.text_en, row.active = title, text_ar, text_en, active
        row.updated_by = staff
        row.updated_at = utcnow()
        await self.session.flush()
        await self.audit(f"staff:{staff}", "canned.saved", str(row.id))
        return row.id

    async def requests_of_beneficiary(self, beneficiary_id: int) -> list[Request]:
        rows = await self.session.scalars(
            select(Request)
            .where(Request.beneficiary_id == beneficiary_id, Request.status != "draft")
            .order_by(Request.id.desc())
        )
        return list(rows)


def _columns(row: Any, exclude: Sequence[str] | set[str] = ()) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for column in row.__table__.columns:
        if column.key in exclude:
            continue
        value = getattr(row, column.key)
        data[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return data
