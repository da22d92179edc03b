"""The database schema. Times are stored in UTC; JSON columns hold channel-neutral data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    event,
    or_,
    type_coerce,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, mapped_column
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.expression import false
from sqlalchemy.types import TypeDecorator

from storage.crypto import BlindIndex, EncryptedJSON, EncryptedText

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


def hashed_match(
    hashed: ColumnElement[Any] | InstrumentedAttribute[str | None],
    clear: ColumnElement[Any] | InstrumentedAttribute[Any],
    value: str | BindParameter[str],
) -> ColumnElement[bool]:
    """Rows whose encrypted column holds ``value``: found by its keyed hash, or, for a row
    written before encryption that ``tawasul keys rotate`` has not reached yet, by the clear
    value itself.

    ``value`` may be a bound parameter, for a statement built once: named ``N``, the
    statement then takes the value twice, as ``N`` (hashed) and ``N_clear`` (as it is), since
    one parameter cannot be bound with two types."""
    as_is: str | BindParameter[str] = value
    if isinstance(value, BindParameter):
        as_is = bindparam(f"{value.key}_clear", type_=String())
    return or_(
        hashed == value,
        and_(hashed.is_(None), type_coerce(clear, String()) == as_is),
    )


class Beneficiary(Base):
    __tablename__ = "beneficiaries"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    lang: Mapped[str | None] = mapped_column(String(8))
    display_name: Mapped[str] = mapped_column(EncryptedText("VARCHAR(200)"), default="")
    # Encrypted; found by the keyed hash beside each (kept equal by the listeners below).
    phone: Mapped[str | None] = mapped_column(EncryptedText("VARCHAR(32)"))
    phone_hash: Mapped[str | None] = mapped_column(BlindIndex(), index=True)
    national_id: Mapped[str | None] = mapped_column(EncryptedText("VARCHAR(16)"))
    national_id_hash: Mapped[str | None] = mapped_column(BlindIndex(), index=True)


class Identity(Base):
    """A way to reach a beneficiary: the same phone on WhatsApp and SMS is one identity."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("kind", "address"),
        Index("ix_identities_kind_address_hash", "kind", "address_hash", unique=True),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("beneficiaries.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(EncryptedText("VARCHAR(320)"))
    # Bind the clear address (``Identity.lookup``); the database gets its keyed hash.
    address_hash: Mapped[str | None] = mapped_column(BlindIndex())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_inbound_at: Mapped[datetime | None]
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False)
    # The beneficiary asked for no more messages (STOP / إيقاف); nothing is sent while true.
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    opted_out_at: Mapped[datetime | None]

    @classmethod
    def lookup(cls, kind: str, address: str) -> ColumnElement[bool]:
        return and_(cls.kind == kind, hashed_match(cls.address_hash, cls.address, address))


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_status_queued", "status", "queued_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("beneficiaries.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="bot")
    state: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON("JSON"), default=dict)
    handoff_reason: Mapped[str | None] = mapped_column(String(32))
    queued_at: Mapped[datetime | None]
    assigned_to: Mapped[str | None] = mapped_column(String(320))
    last_channel: Mapped[str | None] = mapped_column(String(16))
    last_identity_id: Mapped[int | None] = mapped_column(ForeignKey("identities.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class Message(Base):
    """Every message in or out. Inbound ones are unique per channel message id."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("channel", "direction", "channel_message_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("beneficiaries.id"), index=True)
    identity_id: Mapped[int | None] = mapped_column(ForeignKey("identities.id"))
    direction: Mapped[str] = mapped_column(String(8))  # in | out | note
    channel: Mapped[str] = mapped_column(String(16))
    channel_message_id: Mapped[str | None] = mapped_column(String(200))
    author: Mapped[str] = mapped_column(String(320), default="")
    text: Mapped[str] = mapped_column(EncryptedText(), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON("JSON"), default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


Index("ix_messages_unprocessed", Message.direction, Message.processed_at)
# A reply by email threads under the address's latest message: read before each send.
Index("ix_messages_identity", Message.identity_id, Message.direction, Message.id)


class Request(Base):
    __tablename__ = "requests"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("beneficiaries.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    form_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    lang: Mapped[str] = mapped_column(String(8), default="ar")
    channel: Mapped[str] = mapped_column(String(16))
    verify_last4: Mapped[str | None] = mapped_column(EncryptedText("VARCHAR(64)"))
    declared_at: Mapped[datetime | None]
    declaration_channel: Mapped[str | None] = mapped_column(String(16))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class RequestAnswer(Base):
    __tablename__ = "request_answers"
    __table_args__ = (UniqueConstraint("request_id", "field"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    field: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    value: Mapped[str | None] = mapped_column(EncryptedText())
    display: Mapped[str] = mapped_column(EncryptedText(), default="")


class Document(Base):
    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    field: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(EncryptedText("VARCHAR(255)"), default="")


class RequestStatusChange(Base):
    __tablename__ = "request_status_history"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(320))
    note: Mapped[str] = mapped_column(EncryptedText(), default="")


class SurveyAnswer(Base):
    __tablename__ = "survey_answers"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("beneficiaries.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    request_reference: Mapped[str | None] = mapped_column(String(40))
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(EncryptedText())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UnansweredQuestion(Base):
    __tablename__ = "unanswered_questions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    text: Mapped[str] = mapped_column(EncryptedText())
    lang: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Taught to an entry: off the list of questions to teach, still counted in its month.
    taught_at: Mapped[datetime | None]
    taught_to: Mapped[str | None] = mapped_column(String(200))


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OutboxItem(Base):
    """A reply waiting for delivery; written in the transaction that decided it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    identity_id: Mapped[int | None] = mapped_column(ForeignKey("identities.id"))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(EncryptedText("VARCHAR(320)"))
    # pending → sent | failed | held (waits for staff) | cancelled (opted out)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    kind: Mapped[str] = mapped_column(String(16), default="reply", server_default="reply")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The claim it is (or was last) sent under: only that claim's holder records the outcome.
    lease: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(200), index=True)
    # What the channel reported later (Twilio status callbacks: delivered, read, failed...).
    provider_status: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(32))
    parts: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class ProviderReport(Base):
    """A channel's report on a send (Twilio's status callback) that came before the send's
    outcome was recorded: applied once it is."""

    __tablename__ = "provider_reports"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Counter(Base):
    """Sequences for readable reference numbers, per prefix and Hijri year."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class ChannelCursor(Base):
    """Where a channel reader got to (an IMAP mailbox's UIDVALIDITY and last UID, ...)."""

    __tablename__ = "channel_cursors"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# Whatever sets an encrypted looked-up value through the ORM sets its keyed hash too (the
# BlindIndex column hashes the clear value when it is bound). Core inserts and updates
# name both columns themselves.
def _keep_hash(attribute: InstrumentedAttribute[Any], hashed: str) -> None:
    def listener(target: Any, value: Any, _old: Any, _initiator: Any) -> Any:
        setattr(target, hashed, value)
        return value

    event.listen(attribute, "set", listener, retval=True)


_keep_hash(Beneficiary.phone, "phone_hash")
_keep_hash(Beneficiary.national_id, "national_id_hash")
_keep_hash(Identity.address, "address_hash")
