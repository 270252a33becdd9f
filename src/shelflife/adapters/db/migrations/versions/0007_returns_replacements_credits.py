"""returns, replacement orders and credits created in shelflife

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

A return is a new table; a replacement order is an ordinary order that names the order it
replaces; a credit created in shelflife records who created it and why. The reasons are free
text a person typed and may name the buyer: PII, masked with the buyer, and (on PostgreSQL) kept
out of the planner's statistics like every other PII column (see 0002).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shelflife.adapters.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PII_COLUMNS = {"returns": ("reason",), "credits": ("reason",)}


def _pii_statistics() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in PII_COLUMNS.items():
        for column in columns:
            op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET STATISTICS 0')


def upgrade() -> None:
    op.create_table(
        "returns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("return_nr", sa.String(length=64), nullable=False, comment="<order>-RET<n>"),
        sa.Column(
            "created_at", shelflife.adapters.db.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "created_by", sa.String(length=100), nullable=False, comment="Staff member; not a buyer"
        ),
        sa.Column(
            "items",
            sa.Text(),
            nullable=False,
            comment='JSON object SKU -> quantity returned, e.g. {"A-1": 2}; not PII',
        ),
        sa.Column(
            "reason", sa.Text(), nullable=True, comment="PII: why the goods came back (free text)"
        ),
        sa.Column(
            "masked_at", shelflife.adapters.db.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_returns_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_returns_order_id_orders")
        ),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name=op.f("fk_returns_shop_id_shops")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_returns")),
        sa.UniqueConstraint("shop_id", "return_nr", name="uq_returns_number"),
    )
    op.create_index("ix_returns_customer", "returns", ["customer_id"])
    op.create_index("ix_returns_order", "returns", ["order_id"])
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column(
                "replaces_order_id",
                sa.Integer(),
                nullable=True,
                comment="The order this replacement order replaces; NULL for an ordinary order",
            )
        )
        batch.create_foreign_key(
            op.f("fk_orders_replaces_order_id_orders"), "orders", ["replaces_order_id"], ["id"]
        )
        batch.create_index(op.f("ix_orders_replaces_order_id"), ["replaces_order_id"])
    with op.batch_alter_table("credits") as batch:
        batch.add_column(
            sa.Column(
                "created_by",
                sa.String(length=100),
                nullable=True,
                comment="Staff member who created it in shelflife; NULL when imported",
            )
        )
        batch.add_column(
            sa.Column(
                "reason",
                sa.Text(),
                nullable=True,
                comment="PII: why the credit was given (free text)",
            )
        )
    _pii_statistics()


def downgrade() -> None:
    with op.batch_alter_table("credits") as batch:
        batch.drop_column("reason")
        batch.drop_column("created_by")
    with op.batch_alter_table("orders") as batch:
        batch.drop_index(op.f("ix_orders_replaces_order_id"))
        batch.drop_constraint(op.f("fk_orders_replaces_order_id_orders"), type_="foreignkey")
        batch.drop_column("replaces_order_id")
    op.drop_index("ix_returns_order", table_name="returns")
    op.drop_index("ix_returns_customer", table_name="returns")
    op.drop_table("returns")
