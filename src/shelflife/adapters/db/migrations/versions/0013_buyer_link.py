"""a buyer's link across masking

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30

Masking clears a buyer's identity digest, so a later order of the same Amazon buyer starts a new
customer record. `customers.buyer_link` is a second keyed digest (of the marketplace buyer id or
relay e-mail, under its own domain prefix) that masking keeps: the new record and the masked
ones share it, and an order lists the buyer's earlier masked orders without restoring PII.
Buyers imported before this revision get no link (the key needed to compute it is not available
to a migration); their next new order sets it on the record it lands in.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COMMENT = (
    "Keyed hash of the marketplace buyer id or relay e-mail; kept when masked, so that a "
    "buyer's later records link to the masked ones; not PII on its own"
)


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("buyer_link", sa.String(64), nullable=True, comment=COMMENT))
    op.create_index("ix_customers_buyer_link", "customers", ["shop_id", "buyer_link"])


def downgrade() -> None:
    op.drop_index("ix_customers_buyer_link", table_name="customers")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("buyer_link")
