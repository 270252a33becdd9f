"""key lineage, customer field provenance, run details, no planner statistics of PII

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

PII_COLUMNS: dict[str, tuple[str, ...]] = {
    # domain.masking.MASK_PROFILE as of this revision (a later PII column sets its own).
    "customers": (
        "customer_nr_external", "salutation", "first_name", "last_name", "name", "name2",
        "company", "address", "street", "house_nr", "zip", "city", "state", "email", "phone",
        "fax", "birth_date", "note", "history_note", "card_name", "card_nr", "card_exp",
        "account", "account_name",
    ),
    "addresses": (
        "salutation", "name", "name2", "first_name", "last_name", "company", "address",
        "street", "house_nr", "city", "state", "zip", "contact", "phone", "phone2", "fax",
        "fax2", "email", "email2", "birth_date", "note", "card_type", "card_name", "card_nr",
        "card_exp", "account", "account_name", "iban",
    ),
    "address_history": ("old_value",),
    "customer_history": ("text",),
    "orders": ("gift_message", "address_remarks", "shop_note"),
    "invoices": ("billing_name", "billing_address"),
    "credits": ("billing_name", "billing_address"),
}  # fmt: skip


def _pii_statistics(target: int) -> None:
    """PostgreSQL's ANALYZE (autovacuum runs it at any time) copies samples of each column's
    values into pg_statistic: a masked buyer's values would outlive the masking there. A
    statistics target of 0 keeps PII columns out of it; the planner then uses default
    estimates for them, which suits the few lookups by name or e-mail."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in PII_COLUMNS.items():
        for column in columns:
            op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET STATISTICS {target}')


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
    _pii_statistics(0)


def downgrade() -> None:
    _pii_statistics(-1)
    with op.batch_alter_table("retention_runs", schema=None) as batch_op:
        batch_op.drop_column("error")
        batch_op.drop_column("mask_refused")
        batch_op.drop_column("shops")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("pii_sources")
    op.drop_table("installation")
