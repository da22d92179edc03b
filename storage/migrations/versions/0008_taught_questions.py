"""unanswered questions taught to the knowledge base are kept, marked, for the reports

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UTC_TIME = storage.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("unanswered_questions") as batch:
        batch.add_column(sa.Column("taught_at", UTC_TIME, nullable=True))
        batch.add_column(sa.Column("taught_to", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("unanswered_questions") as batch:
        batch.drop_column("taught_to")
        batch.drop_column("taught_at")
