"""request follow-up: information sent by beneficiaries, due-date reminders

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = storage.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "request_info",
        sa.Column("id", ID, nullable=False),
        sa.Column("request_id", ID, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name=op.f("fk_request_info_request_id_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_info")),
    )
    op.create_index(
        op.f("ix_request_info_request_id"), "request_info", ["request_id"], unique=False
    )
    op.create_table(
        "request_reminders",
        sa.Column("id", ID, nullable=False),
        sa.Column("request_id", ID, nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("emailed_at", UTC_TIME, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name=op.f("fk_request_reminders_request_id_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_reminders")),
        sa.UniqueConstraint("request_id", "stage", name=op.f("uq_request_reminders_request_id")),
    )
    op.create_index(
        op.f("ix_request_reminders_request_id"), "request_reminders", ["request_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_request_reminders_request_id"), table_name="request_reminders")
    op.drop_table("request_reminders")
    op.drop_index(op.f("ix_request_info_request_id"), table_name="request_info")
    op.drop_table("request_info")
