"""key rotation and KMS: the master keys used, KMS-encrypted wrapping keys

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

`keys rotate` records the master key it moves data keys away from until every one is re-wrapped;
every master key used is listed with where it is (key file path or KMS key ARN), so a process
that meets a key it has not loaded can load it. A KMS master key encrypts one wrapping key per
process; the data keys are wrapped locally under it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shelflife.adapters.db.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("installation") as batch:
        batch.add_column(
            sa.Column(
                "previous_master_key_id",
                sa.String(64),
                nullable=True,
                comment="While `keys rotate` works: the master key it moves data keys away from",
            )
        )
    op.create_table(
        "key_encryption_keys",
        sa.Column("id", sa.String(64), nullable=False, comment="Master key id"),
        sa.Column("provider", sa.String(10), nullable=False, comment="file or kms"),
        sa.Column(
            "location",
            sa.Text(),
            nullable=False,
            comment="Path of the key file, or the ARN of the KMS key",
        ),
        sa.Column("created_at", shelflife.adapters.db.types.UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "provider IN ('file', 'kms')", name=op.f("ck_key_encryption_keys_provider")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_encryption_keys")),
    )
    op.create_table(
        "wrapping_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column(
            "master_key_id",
            sa.String(64),
            nullable=False,
            comment="The KMS key that encrypted it",
        ),
        sa.Column(
            "encrypted",
            sa.LargeBinary(),
            nullable=False,
            comment="The key as KMS encrypted it (its CiphertextBlob)",
        ),
        sa.Column("created_at", shelflife.adapters.db.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wrapping_keys")),
    )


def downgrade() -> None:
    op.drop_table("wrapping_keys")
    op.drop_table("key_encryption_keys")
    with op.batch_alter_table("installation") as batch:
        batch.drop_column("previous_master_key_id")
