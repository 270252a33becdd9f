"""archive integrity: scrub times, the problems verification finds, run counts

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30

`archive verify` and the nightly sample re-read archive objects: each segment remembers when it
was last found sound (the sample takes the least recently verified first), and every mismatch
is kept in `archive_problems` (object, buyer id, what is wrong; never PII) until a later check
of the same object finds it sound. The run report counts both. A partial index finds the
legacy copies (verify, export, migrate) without reading the segment records.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shelflife.adapters.db.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

RUN_COLUMNS = {
    "verified_objects": "Archive objects the run's sample re-read and checked",
    "integrity_problems": "Mismatches the run's sample found (see archive_problems)",
}


def upgrade() -> None:
    with op.batch_alter_table("archive_segments") as batch:
        batch.add_column(
            sa.Column(
                "verified_at",
                shelflife.adapters.db.types.UtcDateTime(),
                nullable=True,
                comment="Last time a verification re-read it and found it sound; NULL: never",
            )
        )
    with op.batch_alter_table("retention_runs") as batch:
        for column, comment in RUN_COLUMNS.items():
            batch.add_column(
                sa.Column(column, sa.Integer(), nullable=False, server_default="0", comment=comment)
            )
    op.create_table(
        "archive_problems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("found_at", shelflife.adapters.db.types.UtcDateTime(), nullable=False),
        sa.Column(
            "location",
            sa.String(20),
            nullable=False,
            comment="primary or replica: which copy of the object is damaged",
        ),
        sa.Column("object_key", sa.String(300), nullable=False),
        sa.Column(
            "customer_id",
            sa.Integer(),
            nullable=True,
            comment="The buyer whose record is damaged; NULL: the object as a whole",
        ),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("problem", sa.String(200), nullable=False, comment="What is wrong; never PII"),
        sa.Column(
            "resolved_at",
            shelflife.adapters.db.types.UtcDateTime(),
            nullable=True,
            comment="When a later check of the object found it sound; NULL: still open",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_problems")),
    )
    op.create_index("ix_archive_problems_object_key", "archive_problems", ["object_key"])
    op.create_index(
        "ix_archive_copies_legacy",
        "archive_copies",
        ["id"],
        sqlite_where=sa.text("record_offset IS NULL"),
        postgresql_where=sa.text("record_offset IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_archive_copies_legacy", table_name="archive_copies")
    op.drop_index("ix_archive_problems_object_key", table_name="archive_problems")
    op.drop_table("archive_problems")
    with op.batch_alter_table("retention_runs") as batch:
        for column in reversed(RUN_COLUMNS):
            batch.drop_column(column)
    with op.batch_alter_table("archive_segments") as batch:
        batch.drop_column("verified_at")
