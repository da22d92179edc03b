"""personal data encrypted at rest

Keyed-hash columns to look up phone numbers, national IDs and identities' addresses, and, on
PostgreSQL, text columns wide enough for ciphertexts (SQLite stores any length as declared).
Existing rows are encrypted and hashed by `tawasul keys rotate`; until then lookups also
match the clear values.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 02:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table, column, type before, USING expression on PostgreSQL when leaving JSON)
WIDENED = [
    ("beneficiaries", "display_name", sa.String(length=200), None),
    ("beneficiaries", "phone", sa.String(length=32), None),
    ("beneficiaries", "national_id", sa.String(length=16), None),
    ("identities", "address", sa.String(length=320), None),
    ("outbox", "address", sa.String(length=320), None),
    ("requests", "verify_last4", sa.String(length=64), None),
    ("documents", "filename", sa.String(length=255), None),
    ("messages", "payload", sa.JSON(), "payload::text"),
    ("conversations", "state", sa.JSON(), "state::text"),
]


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.add_column("beneficiaries", sa.Column("phone_hash", sa.String(length=64), nullable=True))
    op.add_column(
        "beneficiaries", sa.Column("national_id_hash", sa.String(length=64), nullable=True)
    )
    op.add_column("identities", sa.Column("address_hash", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_beneficiaries_phone_hash"), "beneficiaries", ["phone_hash"])
    op.create_index(
        op.f("ix_beneficiaries_national_id_hash"), "beneficiaries", ["national_id_hash"]
    )
    op.create_index(
        "ix_identities_kind_address_hash", "identities", ["kind", "address_hash"], unique=True
    )
    # Indexes of ciphertexts find nothing.
    op.drop_index(op.f("ix_beneficiaries_phone"), table_name="beneficiaries")
    op.drop_index(op.f("ix_beneficiaries_national_id"), table_name="beneficiaries")
    if _postgresql():
        for table, column, before, using in WIDENED:
            op.alter_column(
                table, column, type_=sa.Text(), existing_type=before, postgresql_using=using
            )


def downgrade() -> None:
    # Going back only keeps a working database when its values are clear (never encrypted,
    # or decrypted with `tawasul keys rotate --decrypt`).
    if _postgresql():
        for table, column, before, using in WIDENED:
            op.alter_column(
                table,
                column,
                type_=before,
                existing_type=sa.Text(),
                postgresql_using=f"{column}::json" if using else None,
            )
    op.create_index(op.f("ix_beneficiaries_national_id"), "beneficiaries", ["national_id"])
    op.create_index(op.f("ix_beneficiaries_phone"), "beneficiaries", ["phone"])
    op.drop_index("ix_identities_kind_address_hash", table_name="identities")
    op.drop_index(op.f("ix_beneficiaries_national_id_hash"), table_name="beneficiaries")
    op.drop_index(op.f("ix_beneficiaries_phone_hash"), table_name="beneficiaries")
    # SQLite (3.35 and later) drops unindexed columns in place, without rebuilding the table.
    op.drop_column("identities", "address_hash")
    op.drop_column("beneficiaries", "national_id_hash")
    op.drop_column("beneficiaries", "phone_hash")
