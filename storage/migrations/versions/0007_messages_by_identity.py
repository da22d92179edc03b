"""an index for a beneficiary address's latest message, read before every reply is sent

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 05:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_identity", "messages", ["identity_id", "direction", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_identity", table_name="messages")
