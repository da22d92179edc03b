"""a channel's delivery reports that arrive before the send they report on is recorded

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = storage.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "provider_reports",
        sa.Column("id", ID, nullable=False),
        sa.Column("provider_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_reports")),
    )
    op.create_index(
        op.f("ix_provider_reports_provider_id"), "provider_reports", ["provider_id"], unique=False
    )
    op.create_index(
        op.f("ix_provider_reports_received_at"), "provider_reports", ["received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_provider_reports_received_at"), table_name="provider_reports")
    op.drop_index(op.f("ix_provider_reports_provider_id"), table_name="provider_reports")
    op.drop_table("provider_reports")
