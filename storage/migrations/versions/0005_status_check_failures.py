"""wrong answers to the request-status check, counted across conversations

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = storage.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "status_check_failures",
        sa.Column("id", ID, nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("reference_hash", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("failed_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_check_failures")),
    )
    op.create_index(
        "ix_status_check_failures_identity",
        "status_check_failures",
        ["identity_id", "failed_at"],
    )
    op.create_index(
        "ix_status_check_failures_reference",
        "status_check_failures",
        ["reference_hash", "failed_at"],
    )
    op.create_index("ix_status_check_failures_failed_at", "status_check_failures", ["failed_at"])


def downgrade() -> None:
    op.drop_index("ix_status_check_failures_failed_at", table_name="status_check_failures")
    op.drop_index("ix_status_check_failures_reference", table_name="status_check_failures")
    op.drop_index("ix_status_check_failures_identity", table_name="status_check_failures")
    op.drop_table("status_check_failures")
