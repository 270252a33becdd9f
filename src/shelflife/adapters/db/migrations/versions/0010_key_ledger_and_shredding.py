"""shredded buyers: when their archive data key was destroyed, and why

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30

Shredding destroys a buyer's archive data key (the database's copy and every key-ledger copy),
which makes every copy of the buyer's archive records unreadable. The buyer row remains, masked,
and says when and why, so that a retrieval can say the data was shredded and when.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shelflife.adapters.db.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On SQLite the check constraint rebuilds the table: keep its AUTOINCREMENT (see 0005).
    with op.batch_alter_table("customers", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(
            sa.Column(
                "shredded_at",
                shelflife.adapters.db.types.UtcDateTime(),
                nullable=True,
                comment="When the buyer's archive data key was destroyed; the archive is unreadable",
            )
        )
        batch.add_column(
            sa.Column(
                "shredded_because",
                sa.String(20),
                nullable=True,
                comment="retention (legal retention ended) or erasure (erased on request)",
            )
        )
        batch.create_check_constraint(
            "shredded_has_no_key",
            "shredded_at IS NULL OR data_key_wrapped IS NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("customers", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint("shredded_has_no_key", type_="check")
        batch.drop_column("shredded_because")
        batch.drop_column("shredded_at")
