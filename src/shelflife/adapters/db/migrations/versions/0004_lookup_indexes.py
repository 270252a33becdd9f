"""indexes for looking orders up by number and copies up by object key

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

Customer service finds an order by its order, invoice or credit number without knowing the shop;
the unique constraints lead with `shop_id`, so without these a lookup scans the whole table. The
archive-orphans check looks copies up by object key.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_orders_number", "orders", "order_nr_external"),
    ("ix_invoices_number", "invoices", "invoice_nr"),
    ("ix_credits_number", "credits", "credit_nr"),
    ("ix_archive_copies_object_key", "archive_copies", "object_key"),
)


def upgrade() -> None:
    for name, table, column in _INDEXES:
        op.create_index(name, table, [column])


def downgrade() -> None:
    for name, table, _column in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
