"""invoice and credit PDFs: their digest (PII), whether the document store holds them, export

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

Every invoice and credit gets a PDF in the document store. The PDF prints the billing name and
address, so its SHA-256 digest would confirm a guessed name: it is a PII column, archived with
the PDF bytes and masked with the document. `pdf_stored` says whether the document store holds
the PDF now (it leaves the store at masking and comes back on retrieval); `pdf_exported_at`
whether an invoices export has included it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shelflife.adapters.db.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = ("invoices", "credits")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    "pdf_sha256",
                    sa.String(64),
                    nullable=True,
                    comment="PII: SHA-256 of the document's PDF; NULL: no PDF made yet",
                )
            )
            batch.add_column(
                sa.Column(
                    "pdf_stored",
                    sa.Boolean(),
                    nullable=False,
                    server_default="0",
                    comment="The document store holds the PDF now (not while masked)",
                )
            )
            batch.add_column(
                sa.Column(
                    "pdf_exported_at",
                    shelflife.adapters.db.types.UtcDateTime(),
                    nullable=True,
                    comment="Last invoices export that included the PDF; NULL: never exported",
                )
            )
        op.create_index(
            f"ix_{table}_pdf_pending",
            table,
            ["id"],
            postgresql_where=sa.text("pdf_sha256 IS NULL AND masked_at IS NULL"),
            sqlite_where=sa.text("pdf_sha256 IS NULL AND masked_at IS NULL"),
        )
        op.create_index(
            f"ix_{table}_pdf_leaving",
            table,
            ["id"],
            postgresql_where=sa.text("pdf_stored AND masked_at IS NOT NULL"),
            sqlite_where=sa.text("pdf_stored AND masked_at IS NOT NULL"),
        )
    if op.get_bind().dialect.name == "postgresql":
        # See 0002: ANALYZE must copy none of these values into pg_statistic.
        for table in TABLES:
            op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "pdf_sha256" SET STATISTICS 0')


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_pdf_leaving", table_name=table)
        op.drop_index(f"ix_{table}_pdf_pending", table_name=table)
        with op.batch_alter_table(table) as batch:
            for column in ("pdf_exported_at", "pdf_stored", "pdf_sha256"):
                batch.drop_column(column)
