"""Workers side by side remove masked documents' PDFs from the document store without waiting
on each other (PostgreSQL): each claims its own rows, skipping those another one holds.

Found by the full suite: three workers of
`test_no_residue_in_database_files.py::test_workers_side_by_side_each_finish_and_leave_no_residue`
picked the same leaving PDFs after their batches, updated them in different orders, and
PostgreSQL failed one run with "deadlock detected ... while updating tuple in relation
invoices". A deadlock needs two workers' timing to meet; the test below makes the wait it
starts from certain instead: one worker holds its claim open, the other must not wait for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from shelflife.adapters.db.tables import Invoice
from shelflife.bootstrap import App, build_app
from shelflife.services.importing import import_lines
from shelflife.services.pdfs import remove_masked_pdfs
from shelflife.services.pipeline import run_retention
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, invoiced_buyers, make_app
from tests.support.pg_cluster import PostgresCluster

pytestmark = pytest.mark.postgres

BUYERS = 6
MASKED_AT = T0 + days(33)


@pytest.fixture
def apps(postgres_cluster: PostgresCluster, tmp_path: Path) -> Iterator[tuple[App, App]]:
    """Two workers on one database, every buyer masked, and every masked invoice's PDF still
    counted as stored: what a run stopped between its masking and the removal leaves."""
    name = f"pdf_claims_{uuid.uuid4().hex[:12]}"
    url = postgres_cluster.create_database(name)
    first, _clock = make_app(url, tmp_path / "home", lock_timeout=0.5)
    second = build_app(first.settings, first.clock)
    try:
        assert import_lines(first, invoiced_buyers(BUYERS)).refused == []
        set_feature(first.ports(), "main", True, "ops")
        assert run_retention(at(first, MASKED_AT).ports(), MASKED_AT).masked == BUYERS
        with first.engine.begin() as conn:
            conn.execute(text("UPDATE invoices SET pdf_stored = true WHERE masked_at IS NOT NULL"))
        yield first, second
    finally:
        second.close()
        first.close()
        postgres_cluster.drop_database(name)


def stored(app: App) -> list[int]:
    with app.engine.connect() as conn:
        return list(
            conn.execute(
                select(Invoice.id).where(Invoice.pdf_stored).order_by(Invoice.id)
            ).scalars()
        )


def test_a_worker_skips_the_pdfs_another_worker_is_removing_and_removes_the_rest(
    apps: tuple[App, App],
) -> None:
    first, second = apps
    leaving = stored(first)
    assert len(leaving) == BUYERS
    with first.ports().uow as uow:  # the first worker's removal, not committed yet
        claimed = uow.pdfs.leaving(2)
        uow.pdfs.mark_removed(claimed)
        removed = remove_masked_pdfs(second.ports())  # waiting would end in "busy"
        assert removed == BUYERS - 2
        assert stored(second) == sorted(p.id for p in claimed)
        uow.commit()
    assert stored(first) == []
