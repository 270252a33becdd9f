"""key lineage, customer field provenance, run details

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shelflife.adapters.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "master_key_id",
            sa.String(length=64),
            nullable=False,
            comment="Id of the master key every data key and archive copy is sealed under",
        ),
        sa.Column(
            "identity_key_wrapped",
            sa.LargeBinary(),
            nullable=False,
            comment="HMAC key of buyer identity digests, wrapped by the master key",
        ),
        sa.Column(
            "created_at", shelflife.adapters.db.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", shelflife.adapters.db.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_installation_singleton")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "pii_sources",
                sa.Text(),
                nullable=True,
                comment="JSON: which order (ordered_at and number) each group of buyer fields "
                "came from, so that merging orders' customer blocks does not depend on import "
                "order; not PII",
            )
        )
    with op.batch_alter_table("retention_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "shops",
                sa.Integer(),
                server_default="0",
                nullable=False,
                comment="Shops with the feature enabled",
            )
        )
        batch_op.add_column(
            sa.Column(
                "mask_refused",
                sa.Integer(),
                server_default="0",
                nullable=False,
                comment="Buyers due for masking whose archive key does not open with the "
                "loaded key",
            )
        )
        batch_op.add_column(
            sa.Column(
                "error",
                sa.String(length=300),
                nullable=True,
                comment="Why the run stopped early (never PII); NULL when it completed",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("retention_runs", schema=None) as batch_op:
        batch_op.drop_column("error")
        batch_op.drop_column("mask_refused")
        batch_op.drop_column("shops")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("pii_sources")
    op.drop_table("installation")
