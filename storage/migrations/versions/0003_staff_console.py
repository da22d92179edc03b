"""staff console

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = storage.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("last_login_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_users")),
        sa.UniqueConstraint("email", name=op.f("uq_staff_users_email")),
    )
    op.create_table(
        "staff_sessions",
        sa.Column("id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_id", ID, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("last_seen_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff_users.id"],
            name=op.f("fk_staff_sessions_staff_id_staff_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_sessions_token_hash")),
    )
    op.create_index(
        op.f("ix_staff_sessions_staff_id"), "staff_sessions", ["staff_id"], unique=False
    )
    op.create_table(
        "staff_login_attempts",
        sa.Column("id", ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_login_attempts")),
    )
    op.create_index(
        "ix_staff_login_attempts_key", "staff_login_attempts", ["email", "ip", "at"], unique=False
    )
    op.create_table(
        "staff_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_staff_settings")),
    )
    op.create_table(
        "canned_answers",
        sa.Column("id", ID, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("text_ar", sa.Text(), nullable=False),
        sa.Column("text_en", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_answers")),
    )
    op.create_table(
        "contact_logs",
        sa.Column("id", ID, nullable=False),
        sa.Column("beneficiary_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("happened_at", UTC_TIME, nullable=False),
        sa.Column("staff", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["beneficiaries.id"],
            name=op.f("fk_contact_logs_beneficiary_id_beneficiaries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_logs")),
    )
    op.create_index(
        op.f("ix_contact_logs_beneficiary_id"), "contact_logs", ["beneficiary_id"], unique=False
    )
    op.create_table(
        "conversation_handlings",
        sa.Column("id", ID, nullable=False),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("staff", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("queued_at", UTC_TIME, nullable=True),
        sa.Column("claimed_at", UTC_TIME, nullable=False),
        sa.Column("first_reply_at", UTC_TIME, nullable=True),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("ended_at", UTC_TIME, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_handlings_conversation_id_conversations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_handlings")),
    )
    for column in ("conversation_id", "staff", "claimed_at"):
        op.create_index(
            op.f(f"ix_conversation_handlings_{column}"),
            "conversation_handlings",
            [column],
            unique=False,
        )
    op.create_table(
        "request_verifications",
        sa.Column("id", ID, nullable=False),
        sa.Column("request_id", ID, nullable=False),
        sa.Column("verified_by", sa.String(length=320), nullable=False),
        sa.Column("verified_at", UTC_TIME, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_request_verifications_request_id_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_verifications")),
        sa.UniqueConstraint("request_id", name=op.f("uq_request_verifications_request_id")),
    )


def downgrade() -> None:
    op.drop_table("request_verifications")
    for column in ("claimed_at", "staff", "conversation_id"):
        op.drop_index(
            op.f(f"ix_conversation_handlings_{column}"), table_name="conversation_handlings"
        )
    op.drop_table("conversation_handlings")
    op.drop_index(op.f("ix_contact_logs_beneficiary_id"), table_name="contact_logs")
    op.drop_table("contact_logs")
    op.drop_table("canned_answers")
    op.drop_table("staff_settings")
    op.drop_index("ix_staff_login_attempts_key", table_name="staff_login_attempts")
    op.drop_table("staff_login_attempts")
    op.drop_index(op.f("ix_staff_sessions_staff_id"), table_name="staff_sessions")
    op.drop_table("staff_sessions")
    op.drop_table("staff_users")
