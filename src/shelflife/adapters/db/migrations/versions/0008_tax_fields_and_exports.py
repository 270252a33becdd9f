"""tax fields kept by choice, documents' separate billing fields and amounts, exports

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

The import carries a VAT ID on the customer and on the billing address; invoices and credits
keep the billing postcode, region, country and VAT ID beside the joined address, and their net,
tax and currency. A shop may keep the VAT ID, postcode and region of its invoices and credits
unmasked, one by one, under a recorded legal basis. Every accounting export is recorded.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shelflife.adapters.db.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NEW_PII: dict[str, dict[str, int]] = {
    "customers": {"vat_id": 20},
    "addresses": {"vat_id": 20},
    "invoices": {"billing_zip": 20, "billing_state": 100, "billing_vat_id": 20},
    "credits": {"billing_zip": 20, "billing_state": 100, "billing_vat_id": 20},
}
KEEP_COMMENTS = {
    "keep_vat_id": "Invoices and credits keep the buyer's VAT ID when masked (tax_fields_basis)",
    "keep_zip": "Invoices and credits keep the billing postcode when masked (tax_fields_basis)",
    "keep_state": "Invoices and credits keep the billing region when masked (tax_fields_basis)",
}
PII_COMMENTS = {
    ("customers", "vat_id"): "PII: the buyer's VAT ID",
    ("addresses", "vat_id"): "PII: VAT ID of the addressee",
    ("*", "billing_zip"): "PII: billing postcode; kept when masked where the shop keeps zip",
    ("*", "billing_state"): "PII: billing region; kept when masked where the shop keeps state",
    ("*", "billing_vat_id"): "PII: buyer's VAT ID; kept when masked where the shop keeps vat_id",
}


def _comment(table: str, column: str) -> str:
    return PII_COMMENTS.get((table, column)) or PII_COMMENTS[("*", column)]


def upgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        for column, comment in KEEP_COMMENTS.items():
            batch.add_column(
                sa.Column(column, sa.Boolean(), nullable=False, server_default="0", comment=comment)
            )
        batch.add_column(
            sa.Column(
                "tax_fields_basis",
                sa.Text(),
                nullable=True,
                comment="The legal basis recorded for the kept tax fields; set while any is kept",
            )
        )
    for table, columns in NEW_PII.items():
        with op.batch_alter_table(table) as batch:
            for column, length in columns.items():
                batch.add_column(
                    sa.Column(
                        column, sa.String(length), nullable=True, comment=_comment(table, column)
                    )
                )
            if table in ("invoices", "credits"):
                batch.add_column(
                    sa.Column(
                        "billing_country",
                        sa.String(100),
                        nullable=True,
                        comment="Kept after masking: needed for tax reports",
                    )
                )
                batch.add_column(
                    sa.Column(
                        "net",
                        sa.Numeric(12, 2),
                        nullable=True,
                        comment="Net amount; NULL when not imported",
                    )
                )
                batch.add_column(
                    sa.Column(
                        "tax",
                        sa.Numeric(12, 2),
                        nullable=True,
                        comment="Tax amount; NULL when not imported",
                    )
                )
                batch.add_column(
                    sa.Column(
                        "exported_at",
                        shelflife.adapters.db.types.UtcDateTime(),
                        nullable=True,
                        comment="Last accounting export that listed it; NULL: never exported",
                    )
                )
                batch.add_column(
                    sa.Column(
                        "currency",
                        sa.String(3),
                        nullable=False,
                        server_default="EUR",
                        comment="ISO 4217 code of the amounts",
                    )
                )
    if op.get_bind().dialect.name == "postgresql":
        # See 0002: ANALYZE must copy none of these values into pg_statistic.
        for table, columns in NEW_PII.items():
            for column in columns:
                op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET STATISTICS 0')
    op.create_table(
        "exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False, comment="accounting"),
        sa.Column("shop", sa.String(100), nullable=True, comment="NULL: every shop"),
        sa.Column(
            "period_from",
            sa.Date(),
            nullable=False,
            comment="First day, inclusive, in each shop's time zone",
        ),
        sa.Column(
            "period_to",
            sa.Date(),
            nullable=False,
            comment="Last day, inclusive, in each shop's time zone",
        ),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column(
            "rows", sa.Integer(), nullable=False, comment="Data rows, the header not counted"
        ),
        sa.Column("created_at", shelflife.adapters.db.types.UtcDateTime(), nullable=False),
        sa.Column(
            "created_by", sa.String(100), nullable=False, comment="Staff member; not a buyer"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exports")),
    )
    op.create_index("ix_exports_kind_created", "exports", ["kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_exports_kind_created", table_name="exports")
    op.drop_table("exports")
    for table, columns in NEW_PII.items():
        with op.batch_alter_table(table) as batch:
            if table in ("invoices", "credits"):
                for column in ("currency", "exported_at", "tax", "net", "billing_country"):
                    batch.drop_column(column)
            for column in reversed(columns):
                batch.drop_column(column)
    with op.batch_alter_table("shops") as batch:
        batch.drop_column("tax_fields_basis")
        for column in reversed(KEEP_COMMENTS):
            batch.drop_column(column)
