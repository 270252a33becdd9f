"""archive segments: one object per nightly batch, records found by offset and length

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

The nightly run writes one segment per batch instead of one object per buyer. `archive_segments`
records each segment (whole-object size and SHA-256, record count); a copy keeps naming its
object in `archive_copies.object_key` and gains the record's offset and length in it. Copies
written before have both NULL: they are whole objects and are still read as such.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shelflife.adapters.db.types import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("object_key", sa.String(length=300), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_segments")),
        sa.UniqueConstraint("object_key", name=op.f("uq_archive_segments_object_key")),
    )
    op.add_column(
        "archive_copies",
        sa.Column(
            "record_offset",
            sa.BigInteger(),
            nullable=True,
            comment="Start of the record in its segment; NULL: a legacy whole object",
        ),
    )
    op.add_column("archive_copies", sa.Column("record_length", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("archive_copies") as batch:
        batch.drop_column("record_length")
        batch.drop_column("record_offset")
    op.drop_table("archive_segments")
