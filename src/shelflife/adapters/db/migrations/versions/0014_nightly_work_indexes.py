"""indexes that let the nightly run find tonight's work without walking every buyer

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30

The mask step looked for buyers archived on earlier nights and not masked yet by walking every
buyer of the shop and testing each against its order and invoice subqueries; the re-mask step
walked every buyer for the few retrieved ones. In a database of 1,000,000 customers both walks
cost more than the night's own work. Two partial indexes hold only the buyers those steps can
select: archived and not masked (waiting for their 30th day or for an open order), and
retrieved. Both stay small: a buyer leaves the first when masked and the second when masked
again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

MASK_WAITING = "masked_at IS NULL AND archived_revision IS NOT NULL"
RETRIEVED = "retrieved_at IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_customers_mask_waiting",
        "customers",
        ["id"],
        postgresql_where=sa.text(MASK_WAITING),
        sqlite_where=sa.text(MASK_WAITING),
    )
    op.create_index(
        "ix_customers_retrieved",
        "customers",
        ["id"],
        postgresql_where=sa.text(RETRIEVED),
        sqlite_where=sa.text(RETRIEVED),
    )


def downgrade() -> None:
    op.drop_index("ix_customers_retrieved", table_name="customers")
    op.drop_index("ix_customers_mask_waiting", table_name="customers")
