"""Reads and writes over one transaction; ``Tx`` is also the engine's port onto storage."""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from sqlalchemy import (
    Integer,
    Row,
    String,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import BindParameter

from conversations.fields import to_hijri
from conversations.messages import Channel, Inbound, Reply, identity_kind
from conversations.ports import (
    TRANSITIONS,
    FailedChecks,
    HandoffReason,
    InfoAnswer,
    RequestStatus,
    RequestSummary,
    Sender,
    Submission,
)
from storage import verification
from storage.direct import direct
from storage.direct import execute as direct_execute
from storage.followup import add_request_info
from storage.models import (
    AuditEntry,
    Beneficiary,
    ChannelCursor,
    Conversation,
    Counter,
    Document,
    Identity,
    Message,
    OutboxItem,
    ProviderReport,
    Request,
    RequestAnswer,
    RequestStatusChange,
    SurveyAnswer,
    UnansweredQuestion,
    hashed_match,
    utcnow,
)

if TYPE_CHECKING:
    from storage.staff_models import Handling

OPEN = ("bot", "queued", "staff")

# The tables themselves, for the statements of the message path: a statement naming only
# columns (not mapped classes) skips the ORM's compiling, autoflush and entity loading, which
# cost more than the statement itself there. Their types still encrypt and hash.
MESSAGES = cast(Table, Message.__table__)
CONVERSATIONS = cast(Table, Conversation.__table__)
IDENTITIES = cast(Table, Identity.__table__)
BENEFICIARIES = cast(Table, Beneficiary.__table__)
OUTBOX = cast(Table, OutboxItem.__table__)
# A row of such a statement: its columns by name.
AnyRow: TypeAlias = "Row[*tuple[Any, ...]]"


class InvalidTransition(ValueError):
    pass


class NotFound(LookupError):
    pass


class NotOpen(ValueError):
    """The conversation is with the bot: no staff member or queue to close it from."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A claimed outbox item, as sending it and recording the outcome need it."""

    id: int
    message_id: int
    conversation_id: int
    identity_id: int | None
    channel: str
    address: str
    kind: str
    attempts: int
    created_at: datetime
    lease: str  # the claim's token: the outcome is recorded only while it still holds


@dataclass(frozen=True, slots=True)
class DeliveryRows:
    """What sending outbox items needs, by id (see ``Tx.delivery_rows``), as rows."""

    messages: dict[int, AnyRow]  # id, payload
    conversations: dict[int, AnyRow]  # id, state: only of replies that name no language
    identities: dict[int, AnyRow]  # id, last_inbound_at, opted_out, unreachable
    latest_inbound: dict[int, AnyRow]  # by identity id: its latest inbound message's
    # identity_id, channel_message_id, payload


@dataclass(frozen=True, slots=True)
class Ingested:
    message_id: int
    conversation_id: int
    beneficiary_id: int


class ConversationBusy(Exception):
    """The conversation is locked by a step under way elsewhere (PostgreSQL): its messages
    are that step's instance's to take, or a later pass's."""


@dataclass(frozen=True, slots=True)
class ClaimedInbound:
    """A stored message taken up by the engine (see ``Tx.claim_inbound``), as rows.

    ``message``: id, identity_id, channel, channel_message_id, text, payload, created_at,
    and its sender's address and opted_out; ``conversation``: id, beneficiary_id, status,
    state, last_channel, last_identity_id.
    """

    message: AnyRow
    conversation: AnyRow
    address: str | None  # the sender's, when the message names its identity


@dataclass(frozen=True, slots=True)
class Behind:
    """Not claimed: an earlier inbound message of the conversation still waits for its step
    (see ``Tx.claim_inbound``); the message's sender (identity id) and channel."""

    conversation_id: int
    identity_id: int | None
    channel: str


@dataclass(frozen=True, slots=True)
class Queued:
    """A reply recorded as a message (and put in the outbox when it has an address)."""

    id: int
    created_at: datetime


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def due_now(session: AsyncSession) -> Any:
    """Now, as a value to write in an outbox item's due time: on PostgreSQL the database's
    clock (every instance judges due times and leases by it), on SQLite the process's."""
    if _dialect(session) == "postgresql":
        return func.statement_timestamp()
    return utcnow()


def _dialect_insert(dialect: str, table: Any) -> Any:
    """An INSERT with the dialect's own ON CONFLICT clauses."""
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


def _insert(session: AsyncSession, table: Any) -> Any:
    return _dialect_insert(_dialect(session), table)


# -- the statements of the message path, built once ------------------------------------------
# Building a statement (coercing its clauses, working out its cache key) cost as much as
# running it on SQLite, and these run for every message: so each is built once, with bound
# parameters, and SQLAlchemy finds its compiled form in its cache from the statement itself.

_M, _C, _I = MESSAGES.c, CONVERSATIONS.c, IDENTITIES.c

_RECEIVED = select(_M.id).where(
    _M.channel == bindparam("channel"),
    _M.direction == "in",
    _M.channel_message_id == bindparam("channel_message_id"),
)
_STORED_INBOUND = direct(_RECEIVED.add_columns(_M.conversation_id, _M.identity_id, _M.processed_at))


def _open_conversation_of(beneficiary_id: Any) -> Any:
    """The id of the beneficiary's open conversation (the latest, were there several), or
    None: a query, for a beneficiary id given as a parameter or as a column."""
    c = CONVERSATIONS.alias("open_conversation").c
    return select(func.max(c.id)).where(c.beneficiary_id == beneficiary_id, c.status.in_(OPEN))


_OPEN_CONVERSATION = _open_conversation_of(bindparam("beneficiary_id"))
# How far behind its latest message a sender's last_inbound_at may be: it is written again
# only once it is this old, so a sender's messages of one minute update it once. It opens
# WhatsApp's 24-hour window, which therefore closes up to this much early, never late; and
# an older message a channel delivers late never moves it back.
INBOUND_STAMP = timedelta(minutes=1)
# A sender's identity, with its open conversation and where that conversation last heard
# from (all None when none is open).
_SENDER_OPEN = CONVERSATIONS.alias("sender_open")
_OPEN = _SENDER_OPEN.c
_SENDER = direct(
    select(
        _I.id,
        _I.beneficiary_id,
        _I.last_inbound_at,
        _OPEN.id,
        _OPEN.last_channel,
        _OPEN.last_identity_id,
    )
    .select_from(
        IDENTITIES.outerjoin(
            _SENDER_OPEN,
            _OPEN.id == _open_conversation_of(_I.beneficiary_id).scalar_subquery(),
        )
    )
    .where(
        _I.kind == bindparam("kind"),
        hashed_match(_I.address_hash, _I.address, bindparam("address")),
    )
)
_CONVERSATION_OF_MESSAGE = direct(
    select(_M.conversation_id).where(_M.id == bindparam("message_id"))
)
_CLAIM_CONVERSATION = direct(
    select(_C.id, _C.beneficiary_id, _C.status, _C.state, _C.last_channel, _C.last_identity_id)
    .where(_C.id == bindparam("conversation_id"))
    # FOR NO KEY UPDATE: steps exclude each other, but a new message (or note, or request)
    # of the conversation, whose foreign key takes a key-share lock on its row, is not held
    # up by a step under way, nor taken for one.
    .with_for_update(key_share=True)
)
# Another instance's step holding the conversation is passed over, not waited for.
_CLAIM_CONVERSATION_FREE = direct(
    _CLAIM_CONVERSATION.with_for_update(key_share=True, skip_locked=True)
)
_CLAIM_MESSAGE = direct(
    select(
        _M.id,
        _M.identity_id,
        _M.channel,
        _M.channel_message_id,
        _M.text,
        _M.payload,
        _M.created_at,
        _I.address,
        _I.opted_out,
    )
    .select_from(MESSAGES.outerjoin(IDENTITIES, _I.id == _M.identity_id))
    .where(
        _M.id == bindparam("message_id"),
        _M.conversation_id == bindparam("conversation_id"),
        _M.processed_at.is_(None),
    )
)
# A message taken up outside the inbox's passes (which go oldest first), by a channel that
# answers in the same exchange: whether an earlier inbound message of its conversation still
# waits for its step (one that failed, left to the inbox worker), which must go first. In the
# same statement, over the conversation's index.
_AHEAD = MESSAGES.alias("ahead")
_WAITING_AHEAD_OF_IT = (
    select(_AHEAD.c.id)
    .where(
        _AHEAD.c.conversation_id == bindparam("conversation_id"),
        _AHEAD.c.id < bindparam("message_id"),
        _AHEAD.c.direction == "in",
        _AHEAD.c.processed_at.is_(None),
    )
    .exists()
)
_CLAIM_MESSAGE_IN_TURN = direct(_CLAIM_MESSAGE.add_columns(_WAITING_AHEAD_OF_IT.label("behind")))
# The inbound messages of a conversation waiting ahead of one, oldest first (rarely any).
_PENDING_AHEAD = direct(
    select(_M.id, _M.identity_id, _M.channel)
    .where(
        _M.conversation_id == bindparam("conversation_id"),
        _M.id < bindparam("message_id"),
        _M.direction == "in",
        _M.processed_at.is_(None),
    )
    .order_by(_M.id)
)
_ADDRESS = direct(select(_I.id, _I.address, _I.opted_out).where(_I.id == bindparam("identity_id")))
# Replies, several in one statement, their ids returned in the order of their rows.
_INSERT_REPLIES = direct(insert(MESSAGES).returning(_M.id, sort_by_parameter_order=True))
_INSERT_OUTBOX = direct(insert(OUTBOX))
# On PostgreSQL new items are due by the database's clock, which every instance shares and
# judges due times by: an instance whose own clock runs ahead must not put replies off.
_INSERT_OUTBOX_DUE_NOW = insert(OUTBOX).values(next_attempt_at=func.statement_timestamp())

# The outbox's claim: items due now whose conversation has nothing sending or waiting ahead
# of them (a conversation's replies leave in order).
_O, _EARLIER = OUTBOX.c, OUTBOX.alias("earlier")
_WAITING_AHEAD = (
    select(_EARLIER.c.id)
    .where(
        _EARLIER.c.conversation_id == _O.conversation_id,
        _EARLIER.c.id < _O.id,
        or_(
            _EARLIER.c.status == "sending",
            (_EARLIER.c.status == "pending") & (_EARLIER.c.next_attempt_at > bindparam("now")),
        ),
    )
    .exists()
)
_DUE = (
    _O.status == "pending",
    _O.next_attempt_at <= bindparam("now"),
    _O.channel.in_(bindparam("channels", expanding=True)),
    ~_WAITING_AHEAD,
)
_CLAIMABLE = (
    select(
        _O.id,
        _O.message_id,
        _O.conversation_id,
        _O.identity_id,
        _O.channel,
        _O.address,
        _O.kind,
        _O.attempts,
        _O.created_at,
    )
    .where(*_DUE)
    .order_by(_O.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_CLAIMABLE_CONVERSATIONS = (
    select(_O.conversation_id)
    .where(*_DUE)
    .group_by(_O.conversation_id)
    .order_by(func.min(_O.id))
    .limit(bindparam("limit"))
)
_CLAIMABLE_OF = _CLAIMABLE.where(_O.conversation_id.in_(bindparam("owned", expanding=True)))
_MARK_SENDING = (
    update(OUTBOX)
    .where(_O.id.in_(bindparam("ids", expanding=True)))
    .values(status="sending", next_attempt_at=bindparam("until"), lease=bindparam("lease"))
)
_RELEASE_EXPIRED = (
    update(OUTBOX)
    .where(_O.status == "sending", _O.next_attempt_at < bindparam("now"))
    .values(status="pending")
)
# A claim still holds while the item is its own: "sending", or released when its lease ended
# but not claimed again since (another claim writes its own token).
_HELD_BY = (
    _O.id == bindparam("row_key"),
    _O.lease == bindparam("held_by"),
    # Not IN (…): a list is an expanding parameter, which several rows in one statement
    # (executemany) cannot take.
    or_(_O.status == "sending", _O.status == "pending"),
)
# What became of a claimed item: the other parameters are the SET.
_RECORD_OUTBOX = update(OUTBOX).where(*_HELD_BY)
_PR = ProviderReport.__table__.c
# The same for a send the channel took, with whether a report of the channel's on it came
# before it was recorded (nearly never): the look-up costs no statement of its own.
# (The id is bound under a name of its own: the one of the column belongs to the SET, and
# SQLite's RETURNING names no tables, so an outbox column there would read the report's.)
_RECORD_SENT = _RECORD_OUTBOX.returning(
    exists().where(_PR.provider_id == bindparam("reported_id", type_=String))
)
_LEASE = select(_O.lease).where(_O.id == bindparam("row_key"))
_LEASES = select(_O.id, _O.lease).where(_O.id.in_(bindparam("ids", expanding=True)))
_REPORTED = select(_PR.provider_id).where(
    _PR.provider_id.in_(bindparam("provider_ids", expanding=True))
)
# What sending claimed items needs, each by a list of ids.
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_DELIVERY_IDENTITIES = select(_I.id, _I.last_inbound_at, _I.opted_out, _I.unreachable).where(
    _I.id.in_(_IDS)
)
_DELIVERY_MESSAGES = select(_M.id, _M.payload).where(_M.id.in_(_IDS))
_DELIVERY_CONVERSATIONS = select(_C.id, _C.state).where(_C.id.in_(_IDS))
_LATEST_INBOUND = select(_M.identity_id, _M.channel_message_id, _M.payload).where(
    _M.id.in_(
        select(func.max(_M.id))
        .where(_M.identity_id.in_(_IDS), _M.direction == "in")
        .group_by(_M.identity_id)
    )
)


@cache
def _insert_unless_taken(dialect: str, table: Table) -> Any:
    """Insert a row of ``table`` unless one of its unique keys is taken; its id or None (an
    inbound message its channel sent before, an identity whose address another has)."""
    return direct(_dialect_insert(dialect, table).on_conflict_do_nothing().returning(table.c.id))


# A first contact: the beneficiary, its identity and its first conversation, in three inserts
# (the identity's unless another first message of the same address was stored first).
_NEW_BENEFICIARY = direct(insert(BENEFICIARIES).returning(BENEFICIARIES.c.id))
_NEW_CONVERSATION = direct(insert(CONVERSATIONS).returning(_C.id))
_DELETE_BENEFICIARY = delete(BENEFICIARIES).where(BENEFICIARIES.c.id == bindparam("row_key"))


@cache
def _update_by_id(table: Table) -> Any:
    """UPDATE one row of ``table`` by id (``row_key``); the other parameters are the SET."""
    return direct(update(table).where(table.c.id == bindparam("row_key")))


# Stored inbound messages not processed yet, oldest first, with their conversation's state.
_PENDING = (
    select(_M.id, _M.conversation_id, _M.text, _C.state)
    .join(CONVERSATIONS, _C.id == _M.conversation_id)
    .where(_M.direction == "in", _M.processed_at.is_(None))
    .order_by(_M.id)
    .limit(bindparam("limit", type_=Integer))
)


_PENDING_EXCEPT = _PENDING.where(_M.conversation_id.not_in(bindparam("busy", expanding=True)))


async def pending_messages(
    db: AsyncSession, limit: int, *, besides: Collection[int] = ()
) -> list[AnyRow]:
    """Up to ``limit`` inbound messages waiting for the engine: id, conversation_id, text and
    the conversation's state, oldest first; none of the conversations ``besides``."""
    if besides:
        return list(await db.execute(_PENDING_EXCEPT, {"limit": limit, "busy": list(besides)}))
    return list(await db.execute(_PENDING, {"limit": limit}))


async def received(db: AsyncConnection, channel: Channel, channel_message_id: str) -> bool:
    """Whether this channel's message is already stored (the key ``ingest`` is unique on)."""
    found = await db.scalar(
        _RECEIVED, {"channel": channel.value, "channel_message_id": channel_message_id}
    )
    return found is not None


# Key spaces of transaction-scoped advisory locks (the first of PostgreSQL's two int keys).
_OPENING_CONVERSATION = 0x7461_0001
_SENDING_CONVERSATION = 0x7461_0002
_STORING_TO_CONVERSATION = 0x7461_0003
# A channel's report on a send against the send's outcome being recorded: the one waits for
# the other, so that a report that finds no send is seen by the record that follows it.
_REPORTING = 0x7461_0004
_EARLY_REPORTS = (
    select(_PR.id, _PR.status, _PR.error_code)
    .where(_PR.provider_id == bindparam("provider_id"))
    .order_by(_PR.id)
)

# Reports of a failed delivery: once one is recorded, no later report clears it.
FAILED_REPORTS = frozenset({"failed", "undelivered"})
# How long a report on a send not recorded (yet) is kept.
REPORTS_KEPT = timedelta(days=1)


def _report_key(provider_id: str) -> int:
    return zlib.crc32(provider_id.encode())


def _apply_report(item: OutboxItem, status: str, error_code: str | None) -> None:
    """A channel's report on a sent item written onto it; a failure stays a failure (Twilio's
    callbacks may come out of order: a "sent" after an "undelivered")."""
    if item.provider_status in FAILED_REPORTS and status not in FAILED_REPORTS:
        return
    item.provider_status = status[:32]
    item.error_code = error_code[:32] if error_code else None
    if status in FAILED_REPORTS:
        item.status = "failed"
        item.last_error = status + (f" (error {error_code})" if error_code else "")


async def _xact_lock(session: AsyncSession, space: int, key: int, *, wait: bool) -> bool:
    """A PostgreSQL advisory lock held until the transaction ends; always granted on SQLite,
    where one writer at a time already serialises transactions. Keys folding onto the same
    int only make two unrelated rows wait for each other, never break exclusion."""
    if _dialect(session) != "postgresql":
        return True
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    result = await session.execute(
        text(f"SELECT {function}(:space, :key)"),
        {"space": space, "key": key % 2_147_483_647},
    )
    return wait or bool(result.scalar())


def _summary(row: Request) -> RequestSummary:
    return RequestSummary(
        reference=row.reference,
        form_id=row.form_id,
        status=RequestStatus(row.status),
        submitted_at=row.submitted_at,
        due_at=row.due_at,
    )


# The audit actions by which a conversation changes hands.
MOVES = (
    "conversation.claimed",
    "conversation.transferred",
    "conversation.escalated",
    "conversation.returned",
    "conversation.closed",
    "conversation.requeued",
)


class Tx:
    """Repository methods over one session (one transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _execute(self, statement: Any, params: Any) -> Any:
        """Run a statement of the message path: straight on SQLite when it is marked so
        (``storage.direct``), through the session otherwise."""
        return await direct_execute(self.session, statement, params)

    async def _scalar(self, statement: Any, params: Any) -> Any:
        return (await self._execute(statement, params)).scalar()

    async def _returned(self, statement: Any, values: dict[str, Any]) -> Any:
        """Run an ``INSERT … RETURNING`` of one row: what it returned, or None (a conflict)."""
        return await self._scalar(statement, values)

    # -- beneficiaries and identities ---------------------------------------------------------

    async def identity(self, kind: str, address: str, *, display_name: str = "") -> Identity:
        """The identity for this address, creating the beneficiary on first contact."""
        found = await self.session.scalar(select(Identity).where(Identity.lookup(kind, address)))
        if found is not None:
            return found
        # Made here, or by a first message of the same address that was stored first.
        await self._new_beneficiary(kind, address, display_name=display_name)
        found = await self.session.scalar(select(Identity).where(Identity.lookup(kind, address)))
        assert found is not None
        return found

    async def link_phone(self, identity: Identity, phone: str) -> None:
        """A phone number the channel vouches for joins this identity to its owner.

        When the number already belongs to another beneficiary (who wrote on WhatsApp or SMS),
        this identity's history moves to them: one person, one history.
        """
        if identity.kind == "phone" and identity.address == phone:
            return  # WhatsApp and SMS: the sender's identity is that phone number already
        current = identity.beneficiary_id
        claimed = await self._returned(
            _insert_unless_taken(_dialect(self.session), IDENTITIES),
            {
                "beneficiary_id": current,
                "kind": "phone",
                "address": phone,
                "address_hash": phone,
                "created_at": utcnow(),
                "unreachable": False,
            },
        )
        if claimed is not None:
            beneficiary = await self.session.get(Beneficiary, current)
            if beneficiary is not None:
                beneficiary.phone = phone
            await self.session.flush()
            return
        phone_identity = await self.session.scalar(
            select(Identity).where(Identity.lookup("phone", phone))
        )
        assert phone_identity is not None
        owner = phone_identity.beneficiary_id
        if owner == current:
            return
        await self.merge_beneficiaries(source=current, target=owner)
        identity.beneficiary_id = owner
        await self.audit("system", "beneficiary.merged", str(owner), source=current)

    async def merge_beneficiaries(self, *, source: int, target: int) -> None:
        """Move everything of ``source`` to ``target``; the conversation under way stays open."""
        await self.session.execute(
            update(Conversation)
            .where(Conversation.beneficiary_id == target, Conversation.status == "bot")
            .values(status="closed", closed_at=utcnow())
        )
        for model in (Identity, Conversation, Message, Request, SurveyAnswer):
            await self.session.execute(
                update(model).where(model.beneficiary_id == source).values(beneficiary_id=target)
            )

    async def set_opt_out(self, kind: str, address: str, opted_out: bool) -> bool:
        """Record STOP or START for an address; False when the address is unknown."""
        identity = await self.session.scalar(select(Identity).where(Identity.lookup(kind, address)))
        if identity is None:
            return False
        identity.opted_out = opted_out
        identity.opted_out_at = utcnow() if opted_out else None
        await self.audit("beneficiary", "opt_out" if opted_out else "opt_in", str(identity.id))
        return True

    async def record_provider_status(
        self, provider_id: str, status: str, error_code: str | None
    ) -> OutboxItem | None:
        """A channel's later report on a sent message (delivered, read, failed...); None when
        no send is recorded under that id. Such a report may have come before the send's
        outcome was written down (Twilio reports within milliseconds): it is kept, and
        applied when it is (``record_outbox``)."""
        await _xact_lock(self.session, _REPORTING, _report_key(provider_id), wait=True)
        item = await self.session.scalar(
            select(OutboxItem).where(OutboxItem.provider_id == provider_id)
        )
        if item is None:
            now = utcnow()
            self.session.add(
                ProviderReport(
                    provider_id=provider_id[:200],
                    status=status[:32],
                    error_code=error_code[:32] if error_code else None,
                    received_at=now,
                )
            )
            # Reports on ids never recorded (another channel's, or a send whose outcome
            # another claim wrote) are not kept for ever.
            await self.session.execute(
                delete(ProviderReport).where(ProviderReport.received_at < now - REPORTS_KEPT)
            )
            return None
        _apply_report(item, status, error_code)
        return item

    async def _apply_early_reports(self, item_id: int, provider_id: str) -> None:
        """The reports on a send that came before its outcome was recorded, applied now that
        it is (in the transaction that recorded it), in the order they came."""
        reports = (await self.session.execute(_EARLY_REPORTS, {"provider_id": provider_id})).all()
        if not reports:
            return
        item = await self.session.get(OutboxItem, item_id)
        if item is not None:
            for report in reports:
                _apply_report(item, report.status, report.error_code)
        await self.session.execute(
            delete(ProviderReport).where(ProviderReport.id.in_([r.id for r in reports]))
        )

    async def cursor(self, name: str) -> dict[str, Any]:
        row = await self.session.get(ChannelCursor, name)
        return dict(row.value) if row is not None else {}

    async def set_cursor(self, name: str, value: dict[str, Any]) -> None:
        now = utcnow()
        stmt = _insert(self.session, ChannelCursor).values(name=name, value=value, updated_at=now)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["name"], set_={"value": value, "updated_at": now}
            )
        )
        # A row this session loaded before would otherwise keep the old value.
        await self.session.get(ChannelCursor, name, populate_existing=True)

    async def _new_beneficiary(
        self,
        kind: str,
        address: str,
        *,
        display_name: str = "",
        last_inbound_at: datetime | None = None,
    ) -> tuple[int, int] | None:
        """A beneficiary and its identity for an address never seen: (identity, beneficiary).

        The unique (kind, address) decides between two first messages arriving at once: the
        loser waits for the winner's commit, keeps nothing and gets None.
        """
        now = utcnow()
        phone = address if kind == "phone" else None
        beneficiary_id = await self._returned(
            _NEW_BENEFICIARY,
            {
                "display_name": display_name[:200],
                "phone": phone,
                "phone_hash": phone,
                "created_at": now,
            },
        )
        identity_id = await self._returned(
            _insert_unless_taken(_dialect(self.session), IDENTITIES),
            {
                "beneficiary_id": beneficiary_id,
                "kind": kind,
                "address": address,
                "address_hash": address,
                "created_at": now,
                "last_inbound_at": last_inbound_at,
                "unreachable": False,
                "opted_out": False,
            },
        )
        if identity_id is None:
            await self.session.execute(_DELETE_BENEFICIARY, {"row_key": beneficiary_id})
            return None
        return identity_id, beneficiary_id

    async def _first_contact(self, kind: str, msg: Inbound) -> tuple[int, int, int] | None:
        """A new beneficiary for an address never seen: (identity, beneficiary, conversation).

        None when another first message of the same address was stored first (its identity
        is taken): nothing of this one is kept, and the caller takes the general way.
        """
        made = await self._new_beneficiary(
            kind,
            msg.sender_id,
            display_name=msg.display_name,
            last_inbound_at=msg.received_at,
        )
        if made is None:
            return None
        identity_id, beneficiary_id = made
        now = utcnow()
        # Nobody else can see this beneficiary yet: no conversation of theirs to look for.
        conversation_id = await self._returned(
            _NEW_CONVERSATION,
            {
                "beneficiary_id": beneficiary_id,
                "status": "bot",
                "state": {},
                "last_channel": msg.channel.value,
                "last_identity_id": identity_id,
                "created_at": now,
                "updated_at": now,
            },
        )
        return identity_id, beneficiary_id, conversation_id

    async def open_conversation(self, beneficiary_id: int) -> Conversation:
        # What this session changed (a conversation just closed) is written first, so that
        # the statement below reads it as the mapped objects hold it.
        await self.session.flush()
        conversation = await self.session.get(
            Conversation, await self.open_conversation_id(beneficiary_id)
        )
        assert conversation is not None  # found or made in this transaction
        return conversation

    async def open_conversation_for_update(self, beneficiary_id: int) -> Conversation:
        """``open_conversation``, locked as ``conversation_for_update``: for a change of its
        state outside the engine's step (a staff decision told to the beneficiary)."""
        await self.session.flush()
        return await self.conversation_for_update(await self.open_conversation_id(beneficiary_id))

    async def open_conversation_id(self, beneficiary_id: int) -> int:
        """The beneficiary's open conversation, a new one when none is open."""
        # Two first messages of one beneficiary at once must not open two conversations;
        # the second waits here until the first commits, then finds its conversation.
        await _xact_lock(self.session, _OPENING_CONVERSATION, beneficiary_id, wait=True)
        found = await self.session.scalar(_OPEN_CONVERSATION, {"beneficiary_id": beneficiary_id})
        if found is not None:
            return int(found)
        previous = await self.session.scalar(
            select(Conversation)
            .where(Conversation.beneficiary_id == beneficiary_id)
            .order_by(Conversation.id.desc())
            .limit(1)
        )
        state: dict[str, Any] = {}
        if previous is not None:
            # A closed conversation hands its language and any unfinished form on.
            carried = previous.state or {}
            state = {k: carried[k] for k in ("lang", "draft") if k in carried}
            if state.get("draft"):
                state["mode"] = "form"
        conversation = Conversation(beneficiary_id=beneficiary_id, status="bot", state=state)
        self.session.add(conversation)
        await self.session.flush()
        return conversation.id

    # -- inbound ----------------------------------------------------------------------------

    async def ingest(
        self, msg: Inbound, payload: dict[str, Any], *, stepped: bool = True
    ) -> Ingested | None:
        """Store an inbound message once; ``None`` when the channel sent it before.

        ``stepped``: the engine's step will take the message and stamp its conversation's
        ``updated_at``; a message kept without a step (a STOP, a file that cannot be read) has
        it stamped here.

        A known sender writing again on the channel of the conversation's last message
        (nearly every message) costs two statements on the tables (three once a minute, see
        ``INBOUND_STAMP``; on PostgreSQL one more, the lock that keeps a conversation's
        messages in the order they are stored), a first contact five; a new conversation or a
        phone number to link takes the longer way through the mapped classes.
        """
        kind = identity_kind(msg.channel)
        address = msg.sender_id
        found = (
            await self._execute(
                _SENDER, {"kind": kind, "address": address, "address_clear": address}
            )
        ).first()
        phone = msg.verified_phone
        # The identity found has the sender's address: a phone identity is its own number.
        linked = not phone or (kind == "phone" and msg.sender_id == phone)
        first = await self._first_contact(kind, msg) if found is None and linked else None
        # Whether the conversation last heard from this sender on this channel already.
        heard = first is not None
        stamp = False  # the sender's last_inbound_at to write (a known sender's)
        if first is not None:
            identity_id, beneficiary_id, conversation_id = first
        elif found is None or not linked:
            identity = await self.identity(kind, msg.sender_id, display_name=msg.display_name)
            identity.last_inbound_at = msg.received_at
            if phone:
                await self.link_phone(identity, phone)
            identity_id, beneficiary_id = identity.id, identity.beneficiary_id
            conversation_id = await self.open_conversation_id(beneficiary_id)
        else:
            identity_id, beneficiary_id, last_inbound, open_id, last_channel, last_identity_id = (
                found
            )
            # Written after the message, below: every path of storing takes the lock on the
            # conversation before it writes the sender's row (an opt-out does too).
            stamp = last_inbound is None or msg.received_at - last_inbound >= INBOUND_STAMP
            # Found open without the lock: only opening one needs it.
            conversation_id = open_id or await self.open_conversation_id(beneficiary_id)
            heard = (
                open_id is not None
                and last_channel == msg.channel.value
                and last_identity_id == identity_id
            )
        # Two messages of one conversation stored at once (two webhooks, two instances) take
        # their ids in the order they commit: otherwise the later one could be committed, seen
        # and processed while the earlier one, with the smaller id, is still being stored.
        await _xact_lock(self.session, _STORING_TO_CONVERSATION, conversation_id, wait=True)
        channel_message_id = msg.channel_message_id or f"local:{secrets.token_hex(12)}"
        message_id = await self._returned(
            _insert_unless_taken(_dialect(self.session), MESSAGES),
            {
                "conversation_id": conversation_id,
                "beneficiary_id": beneficiary_id,
                "identity_id": identity_id,
                "direction": "in",
                "channel": msg.channel.value,
                "channel_message_id": channel_message_id,
                "author": "beneficiary",
                "text": msg.text,
                "payload": payload,
                "created_at": msg.received_at,
            },
        )
        if message_id is None:
            return None
        if stamp:
            await self._update(Identity, identity_id, {"last_inbound_at": msg.received_at})
            if msg.channel is Channel.WHATSAPP:
                # Writing again opens WhatsApp's window: what was held for want of it (a
                # decision outside the window with no template) goes out now.
                await self.session.execute(
                    update(OutboxItem)
                    .where(
                        OutboxItem.status == "held",
                        OutboxItem.channel == Channel.WHATSAPP.value,
                        OutboxItem.identity_id == identity_id,
                    )
                    .values(status="pending", next_attempt_at=due_now(self.session))
                )
        # The same sender on the same channel as before (nearly every message): nothing changes
        # on the conversation until the engine's step, which stamps its updated_at.
        if not heard or not stepped:
            await self._update(
                Conversation,
                conversation_id,
                {
                    "last_channel": msg.channel.value,
                    "last_identity_id": identity_id,
                    "updated_at": utcnow(),
                },
            )
        return Ingested(message_id, conversation_id, beneficiary_id)

    async def _update(self, model: Any, row_id: int, values: dict[str, Any]) -> None:
        """UPDATE one row by id on its table; a copy this session loaded gets the values too
        (as committed), so that whoever reads it in this transaction sees them."""
        await self._execute(_update_by_id(model.__table__), {"row_key": row_id, **values})
        key = self.session.sync_session.identity_key(model, row_id)
        loaded = self.session.identity_map.get(key)
        if loaded is not None:
            for name, value in values.items():
                set_committed_value(loaded, name, value)

    async def claim_inbound(
        self,
        message_id: int,
        conversation_id: int | None = None,
        *,
        wait: bool = True,
        in_turn: bool = False,
    ) -> ClaimedInbound | Behind | None:
        """Lock the message's conversation, then read the message if still unprocessed.

        Also its sender's address. ``conversation_id``, when the caller knows it already,
        saves reading it first. ``wait=False``: raise ``ConversationBusy`` rather than wait
        when another transaction holds the conversation (PostgreSQL; SQLite has one writer).
        A conversation's messages are stepped in order: ``Behind``, and nothing claimed, when
        an earlier inbound message of the conversation has not been processed yet, unless
        ``in_turn`` (the caller takes the conversation's messages oldest first, as the
        inbox's passes do, and need not look).
        """
        if conversation_id is None:
            conversation_id = await self._scalar(
                _CONVERSATION_OF_MESSAGE, {"message_id": message_id}
            )
            if conversation_id is None:
                return None
        # The conversation first (locked on PostgreSQL), then the message as it is once the
        # lock is held: another instance may have processed it meanwhile.
        claim = _CLAIM_CONVERSATION if wait else _CLAIM_CONVERSATION_FREE
        conversation = (await self._execute(claim, {"conversation_id": conversation_id})).first()
        if conversation is None and not wait and _dialect(self.session) == "postgresql":
            raise ConversationBusy(conversation_id)
        found = (
            await self._execute(
                _CLAIM_MESSAGE if in_turn else _CLAIM_MESSAGE_IN_TURN,
                {"message_id": message_id, "conversation_id": conversation_id},
            )
        ).first()
        if found is None or conversation is None:
            return None
        if not in_turn and found.behind:
            return Behind(conversation_id, found.identity_id, found.channel)
        return ClaimedInbound(found, conversation, found.address)

    async def stored_inbound(self, channel: Channel, channel_message_id: str) -> AnyRow | None:
        """The message this channel sent with this id, if stored: id, conversation_id,
        identity_id, processed_at."""
        row: AnyRow | None = (
            await self._execute(
                _STORED_INBOUND,
                {"channel": channel.value, "channel_message_id": channel_message_id},
            )
        ).first()
        return row

    async def replies_to(self, message: AnyRow) -> list[AnyRow]:
        """The replies that followed an inbound message (id, conversation_id, identity_id) to
        its sender, until the conversation's next inbound message: id, payload, created_at."""
        later = MESSAGES.alias("later").c
        following = (
            select(func.min(later.id))
            .where(
                later.conversation_id == message.conversation_id,
                later.id > message.id,
                later.direction == "in",
            )
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(_M.id, _M.payload, _M.created_at)
            .where(
                _M.conversation_id == message.conversation_id,
                _M.id > message.id,
                _M.direction == "out",
                _M.identity_id == message.identity_id,
                or_(following.is_(None), _M.id < following),
            )
            .order_by(_M.id)
        )
        return list(rows)

    async def pending_ahead(self, conversation_id: int, message_id: int) -> list[AnyRow]:
        """The conversation's inbound messages before ``message_id`` still waiting for their
        step, oldest first: id, identity_id, channel."""
        return list(
            await self._execute(
                _PENDING_AHEAD, {"conversation_id": conversation_id, "message_id": message_id}
            )
        )

    async def save_step(
        self,
        claimed: ClaimedInbound,
        *,
        state: dict[str, Any],
        status: str,
        replies: Sequence[Reply],
    ) -> list[Queued]:
        """The engine's step on a claimed message: the conversation's new state, the message
        processed, the replies queued (to the message's sender)."""
        conversation, now = claimed.conversation, utcnow()
        # As the mapped class would: only what changed (the engine's port may have changed
        # the status meanwhile, through its own statement).
        values: dict[str, Any] = {"updated_at": now}
        if state != conversation.state:
            values["state"] = state
        if status != conversation.status:
            values["status"] = status
        await self._update(Conversation, conversation.id, values)
        await self._update(Message, claimed.message.id, {"processed_at": now})
        message = claimed.message
        return await self._queue_replies(
            conversation.id,
            conversation.beneficiary_id,
            # On the channel the message came by: the conversation may have heard from its
            # sender on another one since (WhatsApp, then SMS) before this step.
            message.channel if message.identity_id else conversation.last_channel,
            message.identity_id or conversation.last_identity_id,
            replies,
            # The sender's address, read with the message (the engine's step leaves it as
            # it was: opting out is recorded on its own, outside a step).
            sender=(message.identity_id, message.address, message.opted_out)
            if message.identity_id and message.address is not None
            else None,
        )

    async def _queue_replies(
        self,
        conversation_id: int,
        beneficiary_id: int,
        last_channel: str | None,
        identity_id: int | None,
        replies: Sequence[Reply],
        *,
        author: str = "bot",
        kind: str = "reply",
        sender: tuple[int, str, bool] | None = None,
    ) -> list[Queued]:
        """Replies as messages of the conversation known by these columns, put in the outbox
        when the conversation has an address to send them to. ``sender``: the id, address
        and opted_out of ``identity_id`` when the caller read them already."""
        if not replies:
            return []
        identity: tuple[int, str, bool] | None = sender
        if identity is None and identity_id:
            row = (await self._execute(_ADDRESS, {"identity_id": identity_id})).first()
            identity = (row.id, row.address, row.opted_out) if row is not None else None
        channel = last_channel or Channel.WEBCHAT.value
        created = [utcnow() for _ in replies]
        ids = (
            await self._execute(
                _INSERT_REPLIES,
                [
                    {
                        "conversation_id": conversation_id,
                        "beneficiary_id": beneficiary_id,
                        "identity_id": identity[0] if identity else None,
                        "direction": "out",
                        "channel": channel,
                        "author": author,
                        "text": reply.text,
                        "payload": reply.to_dict(),
                        "created_at": created_at,
                    }
                    for reply, created_at in zip(replies, created, strict=True)
                ],
            )
        ).scalars()
        queued = [Queued(message_id, at) for message_id, at in zip(ids, created, strict=True)]
        if identity is not None:
            to_id, to_address, opted_out = identity
            rows: list[dict[str, Any]] = [
                {
                    "message_id": q.id,
                    "conversation_id": conversation_id,
                    "identity_id": to_id,
                    "channel": channel,
                    "address": to_address,
                    "status": "cancelled" if opted_out else "pending",
                    "last_error": "opted out" if opted_out else None,
                    "kind": kind,
                }
                for q in queued
            ]
            if _dialect(self.session) == "postgresql":
                await self.session.execute(_INSERT_OUTBOX_DUE_NOW, rows)
            else:
                now = utcnow()
                await self._execute(
                    _INSERT_OUTBOX, [row | {"next_attempt_at": now} for row in rows]
                )
        return queued

    # -- outbound ---------------------------------------------------------------------------

    async def queue_replies(
        self,
        conversation: Conversation,
        replies: Sequence[Reply],
        *,
        author: str = "bot",
        identity_id: int | None = None,
        kind: str = "reply",
    ) -> list[Queued]:
        """Record replies as messages and put them in the outbox, in this transaction."""
        # What this session changed (a conversation opened, an address opted out) is written
        # first, so that the statements below read it as the mapped objects hold it.
        await self.session.flush()
        return await self._queue_replies(
            conversation.id,
            conversation.beneficiary_id,
            conversation.last_channel,
            identity_id or conversation.last_identity_id,
            replies,
            author=author,
            kind=kind,
        )

    async def claim_outbox(
        self, now: datetime, channels: Sequence[str], until: datetime, limit: int = 50
    ) -> list[OutboxEntry]:
        """The outbox items due now, marked "sending" until ``until`` (their lease)."""
        params: dict[str, Any] = {"now": now, "channels": list(channels), "limit": limit}
        stmt = _CLAIMABLE
        if _dialect(self.session) == "postgresql":
            # Row locks alone would let another instance take a conversation's second reply
            # while the first is claimed but not yet committed as "sending". So a claimer
            # first owns whole conversations (skipping those another claimer holds), then
            # reads their due items afresh, seeing every claim committed before it got them.
            candidates = await self.session.scalars(_CLAIMABLE_CONVERSATIONS, params)
            owned = [
                conversation_id
                for conversation_id in candidates
                if await _xact_lock(
                    self.session, _SENDING_CONVERSATION, conversation_id, wait=False
                )
            ]
            if not owned:
                return []
            stmt, params = _CLAIMABLE_OF, {**params, "owned": owned}
        lease = secrets.token_hex(16)
        rows = await self.session.execute(stmt, params)
        items = [OutboxEntry(*row, lease=lease) for row in rows]
        if items:
            await self.session.execute(
                _MARK_SENDING,
                {"ids": [item.id for item in items], "until": until, "lease": lease},
            )
        return items

    async def record_outbox(self, item: OutboxEntry, values: dict[str, Any]) -> bool:
        """What became of a claimed item (its new status, attempts, error...), written only
        while its claim holds; False, and nothing written, when another claim has taken the
        item since (its lease ended first). True without writing when this claim's outcome
        was written already. A record that sets ``provider_id`` (a send the channel took)
        also applies the channel's reports on that send that came before it."""
        params = {"row_key": item.id, "held_by": item.lease, **values}
        provider_id = values.get("provider_id")
        reported = False
        if provider_id:
            # Before the record: a report on this send was then either committed before it
            # (and the record sees it) or waits for its commit (and finds the send).
            await _xact_lock(self.session, _REPORTING, _report_key(provider_id), wait=True)
            params["reported_id"] = provider_id
            row = (await self.session.execute(_RECORD_SENT, params)).first()
            held, reported = (False, False) if row is None else (True, bool(row[0]))
        else:
            result = await self.session.execute(_RECORD_OUTBOX, params)
            held = bool(cast(Any, result).rowcount)
        if not held:
            # A first attempt whose commit was reported failed may have been kept after all
            # (the connection lost during COMMIT): the item then still bears this claim.
            if await self.session.scalar(_LEASE, {"row_key": item.id}) != item.lease:
                return False
            # Its reports were applied then; any that came since are applied now.
            reported = bool(provider_id)
        else:
            self._as_written(item, values)
        if reported:
            assert provider_id
            await self._apply_early_reports(item.id, provider_id)
        return True

    def _as_written(self, item: OutboxEntry, values: dict[str, Any]) -> None:
        """The item's row, when this session has it loaded, as its record wrote it (the
        statement went around the mapped object)."""
        key = self.session.sync_session.identity_key(OutboxItem, item.id)
        loaded = self.session.identity_map.get(key)
        if loaded is not None:
            for name, value in values.items():
                set_committed_value(loaded, name, value)

    async def extend_lease(self, item: OutboxEntry, until: datetime) -> bool:
        """Keep a claimed item "sending" until ``until``, while its claim holds (also when its
        lease ended and it went back but nobody claimed it since); False when another claim
        has taken it, or its outcome is written already."""
        values = {"status": "sending", "next_attempt_at": until}
        result = await self.session.execute(
            _RECORD_OUTBOX, {"row_key": item.id, "held_by": item.lease, **values}
        )
        return bool(cast(Any, result).rowcount)

    def due_now(self) -> Any:
        """Now as a due time in the outbox: see ``due_now``."""
        return due_now(self.session)

    async def failed_outbox(self) -> list[OutboxItem]:
        """Items set aside (failed after their attempts, or held for staff), oldest first."""
        return list(
            await self.session.scalars(
                select(OutboxItem)
                .where(OutboxItem.status.in_(("failed", "held")))
                .order_by(OutboxItem.id)
            )
        )

    async def retry_outbox(self, ids: Sequence[int] | None) -> list[int]:
        """Queue failed or held items again (all of them when ``ids`` is None), their
        addresses reachable again; the ids queued."""
        stmt = select(OutboxItem).where(OutboxItem.status.in_(("failed", "held")))
        if ids is not None:
            stmt = stmt.where(OutboxItem.id.in_(list(ids)))
        retried = []
        for item in await self.session.scalars(stmt.order_by(OutboxItem.id)):
            item.status = "pending"
            item.attempts = 0
            item.next_attempt_at = self.due_now()
            if item.identity_id:
                identity = await self.session.get(Identity, item.identity_id)
                if identity is not None:
                    identity.unreachable = False
            retried.append(item.id)
        return retried

    async def record_outcomes(
        self, records: Sequence[tuple[OutboxEntry, dict[str, Any]]]
    ) -> list[bool]:
        """``record_outbox`` for several claimed items at once, whether each claim held: the
        records that set the same columns go in one statement, and the channel's reports
        that came before any of the sends are looked up in one."""
        if len(records) < 2:
            return [await self.record_outbox(item, values) for item, values in records]
        provider_ids = [str(v["provider_id"]) for _, v in records if v.get("provider_id")]
        # As record_outbox does, in one order: two batches never wait for each other crosswise.
        for key in sorted({_report_key(provider_id) for provider_id in provider_ids}):
            await _xact_lock(self.session, _REPORTING, key, wait=True)
        shapes: dict[tuple[str, ...], list[int]] = {}
        for at, (_, values) in enumerate(records):
            shapes.setdefault(tuple(sorted(values)), []).append(at)
        held = [True] * len(records)
        unsure: list[int] = []
        for positions in shapes.values():
            result = cast(
                Any,
                await self.session.execute(
                    _RECORD_OUTBOX,
                    [
                        {"row_key": records[at][0].id, "held_by": records[at][0].lease}
                        | records[at][1]
                        for at in positions
                    ],
                ),
            )
            if not (result.supports_sane_multi_rowcount() and result.rowcount == len(positions)):
                unsure.extend(positions)
        if unsure:
            # Some claims did not hold, or this one's outcome was written already (see
            # record_outbox): an item bearing this claim's token holds either way.
            ids = [records[at][0].id for at in unsure]
            rows = await self.session.execute(_LEASES, {"ids": ids})
            leases = {row.id: row.lease for row in rows}
            for at in unsure:
                held[at] = leases.get(records[at][0].id) == records[at][0].lease
        for (item, values), holds in zip(records, held, strict=True):
            if holds:
                self._as_written(item, values)
        if provider_ids:
            reported = set(await self.session.scalars(_REPORTED, {"provider_ids": provider_ids}))
            for (item, values), holds in zip(records, held, strict=True):
                if holds and values.get("provider_id") in reported:
                    await self._apply_early_reports(item.id, values["provider_id"])
        return held

    async def clock(self) -> datetime:
        """The time by the database's clock on PostgreSQL, which every instance shares, so
        that a lease one instance writes is judged by the others against the same clock
        (their own may be ahead or behind); on SQLite, the one process's own."""
        if _dialect(self.session) == "postgresql":
            now = await self.session.scalar(select(func.statement_timestamp()))
            return cast(datetime, now).astimezone(UTC)
        return utcnow()

    async def mark_unreachable(self, identity_id: int) -> None:
        """The address refused a message for good: nothing more is sent to it."""
        await self._update(Identity, identity_id, {"unreachable": True})

    async def delivery_rows(self, items: Sequence[OutboxEntry]) -> DeliveryRows:
        """The messages, conversations and addresses of outbox items, in four statements at
        most: a conversation is read (its state, for the language) only for a reply that does
        not say which language it is written in (the engine's replies all do)."""

        async def by_id(statement: Any, ids: Iterable[int | None]) -> dict[int, AnyRow]:
            wanted = sorted({i for i in ids if i is not None})
            if not wanted:
                return {}
            rows = await self.session.execute(statement, {"ids": wanted})
            return {row[0]: row for row in rows}

        identities = await by_id(_DELIVERY_IDENTITIES, (e.identity_id for e in items))
        latest: dict[int, AnyRow] = {}
        if identities:
            rows = await self.session.execute(_LATEST_INBOUND, {"ids": list(identities)})
            latest = {row.identity_id: row for row in rows if row.identity_id is not None}
        messages = await by_id(_DELIVERY_MESSAGES, (e.message_id for e in items))
        unsaid = (
            e.conversation_id for e in items if not messages[e.message_id].payload.get("lang")
        )
        return DeliveryRows(
            messages=messages,
            conversations=await by_id(_DELIVERY_CONVERSATIONS, unsaid),
            identities=identities,
            latest_inbound=latest,
        )

    async def release_expired_leases(self, now: datetime) -> None:
        """Items claimed by a process that died before recording the result go back."""
        await self.session.execute(_RELEASE_EXPIRED, {"now": now})

    async def outbox_for_messages(self, message_ids: Sequence[int]) -> list[OutboxItem]:
        rows = await self.session.scalars(
            select(OutboxItem).where(OutboxItem.message_id.in_(message_ids))
        )
        return list(rows)

    async def waiting_for(self, kind: str, address: str) -> list[tuple[OutboxItem, Message]]:
        """The replies still pending for an address, oldest first, with their messages: for
        a channel that shows replies itself when its beneficiary next looks (the terminal)."""
        identity_id = await self.session.scalar(
            select(Identity.id).where(Identity.lookup(kind, address))
        )
        if identity_id is None:
            return []
        rows = await self.session.execute(
            select(OutboxItem, Message)
            .join(Message, Message.id == OutboxItem.message_id)
            .where(OutboxItem.identity_id == identity_id, OutboxItem.status == "pending")
            .order_by(OutboxItem.id)
        )
        return [(item, message) for item, message in rows.tuples()]

    async def messages_of(
        self, beneficiary_id: int, *, after: int = 0, direction: str | None = None
    ) -> list[Message]:
        stmt = select(Message).where(Message.beneficiary_id == beneficiary_id, Message.id > after)
        if direction is not None:
            stmt = stmt.where(Message.direction == direction)
        return list(await self.session.scalars(stmt.order_by(Message.id)))

    # -- the engine's port ----------------------------------------------------------------------

    async def requests_of(self, beneficiary_id: int) -> list[RequestSummary]:
        rows = await self.session.scalars(
            select(Request)
            .where(Request.beneficiary_id == beneficiary_id, Request.status != "draft")
            .order_by(Request.id.desc())
            .limit(10)
        )
        return [_summary(r) for r in rows]

    async def verify_request(self, reference: str, last4: str) -> RequestSummary | None:
        row = await self.session.scalar(select(Request).where(Request.reference == reference))
        if row is None or not row.verify_last4 or len(last4) != 4:
            return None
        candidates = row.verify_last4.split(",")
        if any(secrets.compare_digest(c, last4) for c in candidates):
            return _summary(row)
        return None

    async def failed_checks(self, sender: Sender, reference: str, since: datetime) -> FailedChecks:
        return await verification.failed_checks(self.session, sender, reference, since)

    async def record_failed_check(self, sender: Sender, reference: str, at: datetime) -> None:
        await verification.record_failed_check(self.session, sender, reference, at)

    async def next_reference(self, prefix: str, at: datetime) -> str:
        year = to_hijri(at.date()).split("-")[0]
        name = f"{prefix}-{year}"
        stmt = (
            _insert(self.session, Counter)
            .values(name=name, value=1)
            .on_conflict_do_update(index_elements=["name"], set_={"value": Counter.value + 1})
            .returning(Counter.value)
        )
        value = (await self.session.execute(stmt)).scalar_one()
        return f"{name}-{value:05d}"

    async def submit(self, submission: Submission) -> str:
        reference = await self.next_reference(submission.reference_prefix, submission.submitted_at)
        last4 = []
        for name in ("national_id", "mobile", "new_mobile"):
            value = submission.answers.get(name, {}).get("value")
            if isinstance(value, str) and len(value) >= 4:
                last4.append(value[-4:])
        request = Request(
            reference=reference,
            beneficiary_id=submission.beneficiary_id,
            conversation_id=submission.conversation_id,
            form_id=submission.form_id,
            kind=submission.kind,
            status=RequestStatus.SUBMITTED.value,
            lang=submission.lang,
            channel=submission.channel.value,
            verify_last4=",".join(last4) or None,
            declared_at=submission.declared_at,
            declaration_channel=submission.channel.value if submission.declared_at else None,
            submitted_at=submission.submitted_at,
            due_at=submission.due_at,
            updated_at=submission.submitted_at,
        )
        self.session.add(request)
        await self.session.flush()
        for position, (name, answer) in enumerate(submission.answers.items()):
            value = answer.get("value")
            if isinstance(value, list):
                for item in value:
                    self.session.add(Document(request_id=request.id, field=name, **item))
                value = None
            self.session.add(
                RequestAnswer(
                    request_id=request.id,
                    field=name,
                    position=position,
                    value=None if value is None else str(value),
                    display=str(answer.get("display", "")),
                )
            )
        self.session.add(
            RequestStatusChange(
                request_id=request.id,
                from_status=RequestStatus.DRAFT.value,
                to_status=RequestStatus.SUBMITTED.value,
                at=submission.submitted_at,
                actor="beneficiary",
            )
        )
        beneficiary = await self.session.get(Beneficiary, submission.beneficiary_id)
        if beneficiary is not None:
            national_id = submission.answers.get("national_id", {}).get("value")
            if isinstance(national_id, str):
                beneficiary.national_id = national_id
            full_name = submission.answers.get("full_name", {}).get("value")
            if isinstance(full_name, str):
                beneficiary.display_name = full_name[:200]
            # The mobile they gave, so that staff find them by it (a number a channel vouches
            # for, set when they wrote from it, is kept).
            mobile = submission.answers.get("mobile", {}).get("value")
            if isinstance(mobile, str) and mobile.startswith("+") and not beneficiary.phone:
                beneficiary.phone = mobile
        await self.audit("beneficiary", "request.submitted", reference)
        return reference

    async def handoff(self, conversation_id: int, reason: HandoffReason) -> None:
        await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(status="queued", handoff_reason=reason.value, queued_at=utcnow())
        )

    async def leave_queue(self, conversation_id: int) -> None:
        await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.status == "queued")
            .values(status="bot", handoff_reason=None, queued_at=None)
        )

    async def record_survey(
        self,
        beneficiary_id: int,
        conversation_id: int,
        request_reference: str | None,
        rating: int,
        comment: str | None,
    ) -> None:
        self.session.add(
            SurveyAnswer(
                beneficiary_id=beneficiary_id,
                conversation_id=conversation_id,
                request_reference=request_reference,
                rating=rating,
                comment=comment,
            )
        )

    async def record_unanswered(self, text: str, lang: str) -> None:
        self.session.add(UnansweredQuestion(text=text[:1000], lang=lang))

    async def add_request_info(
        self, reference: str, beneficiary_id: int, answer: InfoAnswer
    ) -> bool:
        return await add_request_info(self, reference, beneficiary_id, answer)

    # -- staff-side operations ---------------------------------------------------------------------

    async def audit(self, actor: str, action: str, subject: str = "", **detail: Any) -> None:
        self.session.add(AuditEntry(actor=actor, action=action, subject=subject, detail=detail))

    async def queue(self) -> list[tuple[Conversation, Message | None]]:
        conversations = list(
            await self.session.scalars(
                select(Conversation)
                .where(Conversation.status == "queued")
                .order_by(Conversation.queued_at, Conversation.id)
            )
        )
        result = []
        for conversation in conversations:
            last = await self.session.scalar(
                select(Message)
                .where(Message.conversation_id == conversation.id, Message.direction == "in")
                .order_by(Message.id.desc())
                .limit(1)
            )
            result.append((conversation, last))
        return result

    async def request_rows(self, status: str | None = None) -> list[Request]:
        stmt = select(Request).order_by(Request.due_at.is_(None), Request.due_at, Request.id)
        if status:
            stmt = stmt.where(Request.status == status)
        return list(await self.session.scalars(stmt))

    async def request_by_reference(self, reference: str) -> Request:
        row = await self.session.scalar(select(Request).where(Request.reference == reference))
        if row is None:
            raise NotFound(reference)
        return row

    async def request_details(self, request: Request) -> dict[str, Any]:
        answers = await self.session.scalars(
            select(RequestAnswer)
            .where(RequestAnswer.request_id == request.id)
            .order_by(RequestAnswer.position)
        )
        documents = await self.session.scalars(
            select(Document).where(Document.request_id == request.id).order_by(Document.id)
        )
        history = await self.session.scalars(
            select(RequestStatusChange)
            .where(RequestStatusChange.request_id == request.id)
            .order_by(RequestStatusChange.id)
        )
        return {
            "answers": list(answers),
            "documents": list(documents),
            "history": list(history),
        }

    async def change_status(
        self, request: Request, new: RequestStatus, *, actor: str, note: str = ""
    ) -> None:
        old = RequestStatus(request.status)
        if new not in TRANSITIONS[old]:
            raise InvalidTransition(f"{old.value} → {new.value} is not allowed")
        now = utcnow()
        request.status = new.value
        request.updated_at = now
        if new is RequestStatus.CLOSED:
            request.closed_at = now
        self.session.add(
            RequestStatusChange(
                request_id=request.id,
                from_status=old.value,
                to_status=new.value,
                at=now,
                actor=actor,
                note=note,
            )
        )
        await self.audit(actor, "request.status", request.reference, to=new.value)

    async def open_turn(self, conversation_id: int) -> Handling | None:
        """The staff member's turn with the conversation under way, if any."""
        from storage.staff_models import Handling  # the console's tables

        return await self.session.scalar(
            select(Handling)
            .where(Handling.conversation_id == conversation_id, Handling.ended_at.is_(None))
            .order_by(Handling.id.desc())
            .limit(1)
        )

    async def end_turn(self, conversation_id: int, outcome: str) -> None:
        """End the staff member's turn with the conversation, if one is under way."""
        turn = await self.open_turn(conversation_id)
        if turn is not None:
            turn.ended_at = utcnow()
            turn.outcome = outcome

    async def taken_since(self, conversation_id: int, since: datetime | None) -> bool:
        """Whether a staff member took the conversation since it was queued (``since``)."""
        from storage.staff_models import Handling  # the console's tables

        stmt = select(Handling.id).where(Handling.conversation_id == conversation_id)
        if since is not None:
            stmt = stmt.where(Handling.claimed_at >= since)
        return await self.session.scalar(stmt.limit(1)) is not None

    async def last_move(self, conversation_id: int, staff: str) -> AuditEntry | None:
        """How the conversation last changed hands (taken, transferred, escalated, given back,
        closed), for a staff member who held it; None when they never did."""
        from storage.staff_models import Handling  # the console's tables

        held = await self.session.scalar(
            select(Handling.id)
            .where(Handling.conversation_id == conversation_id, Handling.staff == staff)
            .limit(1)
        )
        if held is None:
            return None
        return await self.session.scalar(
            select(AuditEntry)
            .where(
                AuditEntry.subject == str(conversation_id),
                AuditEntry.action.in_(MOVES),
            )
            .order_by(AuditEntry.id.desc())
            .limit(1)
        )

    async def conversation_for_update(self, conversation_id: int) -> Conversation:
        """The conversation locked until the end of the transaction, read afresh (not as this
        session may have loaded it before): a step saving its state meanwhile is waited for,
        and what is written back from here is not what the step replaced."""
        row = await self.session.scalar(
            select(Conversation)
            .where(Conversation.id == conversation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if row is None:
            raise NotFound(str(conversation_id))
        return row

    async def count_by_status(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(Request.status, func.count()).group_by(Request.status)
        )
        return {status: count for status, count in rows}

    async def late_requests(self, now: datetime, within: timedelta) -> list[Request]:
        rows = await self.session.scalars(
            select(Request).where(
                Request.status.in_(("submitted", "under_review", "needs_info")),
                Request.due_at.is_not(None),
                Request.due_at <= now + within,
            )
        )
        return list(rows)
