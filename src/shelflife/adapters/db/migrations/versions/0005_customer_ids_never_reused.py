"""customer ids are never reused on SQLite

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

A buyer reference (C42) names one customer for good: it is in the audit log, in archive object
keys and in what staff wrote down. SQLite hands the largest deleted rowid out again unless the
table is AUTOINCREMENT, and merging two customers deletes one, so the table is rebuilt with it.
PostgreSQL's sequences never go back; nothing changes there.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)


def _rebuild(*, autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # env.py switches foreign-key enforcement off around the migration and checks every
    # reference before it commits, as SQLite's own procedure for rebuilding a table asks.
    with op.batch_alter_table(
        "customers", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass
