"""an index for the sign-in failures of one client address over every account

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 02:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_staff_login_attempts_address", "staff_login_attempts", ["ip", "at"])


def downgrade() -> None:
    op.drop_index("ix_staff_login_attempts_address", table_name="staff_login_attempts")
