"""Tables of the staff console: accounts, sessions, canned answers, contact logs, handlings.

They share ``storage.models.Base``'s metadata; migration 0003 creates them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.crypto import EncryptedText
from storage.models import Base, Id, utcnow


class StaffUser(Base):
    __tablename__ = "staff_users"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class StaffSession(Base):
    """A signed-in browser; the cookie carries the token, the table only its hash."""

    __tablename__ = "staff_sessions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class LoginAttempt(Base):
    __tablename__ = "staff_login_attempts"
    __table_args__ = (
        Index("ix_staff_login_attempts_key", "email", "ip", "at"),
        # The failures of one client address over every account (password spraying).
        Index("ix_staff_login_attempts_address", "ip", "at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)


class StaffSetting(Base):
    """Values the console generates for itself (the session key of an embedded install)."""

    __tablename__ = "staff_settings"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CannedAnswer(Base):
    __tablename__ = "canned_answers"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    text_ar: Mapped[str] = mapped_column(Text, default="")
    text_en: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by: Mapped[str] = mapped_column(String(320), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContactLog(Base):
    """A visit, phone call or letter, so that every contact is in one history (P1)."""

    __tablename__ = "contact_logs"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("beneficiaries.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(EncryptedText(), default="")
    happened_at: Mapped[datetime]
    staff: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Handling(Base):
    """One staff member's turn with a conversation, from claim to close, transfer or return."""

    __tablename__ = "conversation_handlings"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    staff: Mapped[str] = mapped_column(String(320), index=True)
    reason: Mapped[str | None] = mapped_column(String(32))
    # Since when this staff member could take the conversation: when it (last) entered the
    # queue, or the moment it was transferred to them or they took it over.
    queued_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Their own replies in the turn (a colleague's reply meanwhile is not theirs).
    first_reply_at: Mapped[datetime | None]
    replies: Mapped[int] = mapped_column(Integer, default=0)
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))


class RequestVerification(Base):
    """Staff matched the submitted data against the documents (P3)."""

    __tablename__ = "request_verifications"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), unique=True)
    verified_by: Mapped[str] = mapped_column(String(320))
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str] = mapped_column(EncryptedText(), default="")
